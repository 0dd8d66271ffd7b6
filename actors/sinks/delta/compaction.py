"""Periodic compaction of small files, in a thread of its own, off the write path.

Why: every batch is one commit with at least one Parquet file, so a table fed small
batches collects small files, and readers pay per file. `optimize.compact()` rewrites
them into large ones in a commit that removes nothing a reader still needs.

Decisions:

* Triggered after a commit when `compact_every_commits` commits of this process or
  `compact_interval_s` seconds passed since the last compaction; the batch that
  triggers it does not wait for it.
* At most one compaction of a sink at a time (a second trigger while one runs is
  dropped); it runs concurrently with appends, which is safe: an append reads no
  files, so a compaction and an append never conflict (a compaction that loses a race
  with another compaction fails and is tried at the next trigger).
* A failed compaction is logged and never fails a batch: it is an optimisation.
* `vacuum` (deleting unreferenced files) only when `vacuum_retention_hours` is set:
  it breaks readers and time travel older than the retention, so it is opt-in.
* `close()` waits for a running compaction: its commit is not left half-done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from deltalake import DeltaTable

from actors.sinks.delta.errors import to_delta_error
from actors.sinks.delta.settings import DeltaSinkSettings

__all__ = ["Compactor"]

_log = logging.getLogger(__name__)


class Compactor:
    """Starts a compaction thread when the settings' triggers say so."""

    def __init__(
        self,
        settings: DeltaSinkSettings,
        options: Callable[[], Mapping[str, str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._options = options
        self._clock = clock
        self._lock = threading.Lock()
        self._commits = 0
        self._last = clock()
        self._thread: threading.Thread | None = None
        self.completed = 0
        """Compactions that finished without error (for tests and metrics)."""

    def note_commit(self) -> None:
        """Count a commit and start a compaction if one is due and none is running."""
        settings = self._settings
        if not settings.compaction_enabled:
            return
        with self._lock:
            self._commits += 1
            due = (
                settings.compact_every_commits > 0
                and self._commits >= settings.compact_every_commits
            ) or (
                settings.compact_interval_s > 0
                and self._clock() - self._last >= settings.compact_interval_s
            )
            if not due or (self._thread is not None and self._thread.is_alive()):
                return
            self._commits = 0
            self._last = self._clock()
            self._thread = threading.Thread(
                target=self._compact, name="delta-compaction", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Wait for a running compaction to finish (blocking: call from a worker thread)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _compact(self) -> None:
        settings = self._settings
        try:
            table = DeltaTable(settings.table, storage_options=dict(self._options()))
            metrics = table.optimize.compact()
            if settings.vacuum_retention_hours is not None:
                table.vacuum(settings.vacuum_retention_hours, dry_run=False)
        except Exception as exc:
            error = to_delta_error(exc, settings.table, "compact")
            _log.warning("Delta compaction failed: %s", error, extra=error.context)
            return
        self.completed += 1
        _log.info(
            "compacted Delta table %s: %s files removed, %s added",
            settings.table,
            metrics.get("numFilesRemoved"),
            metrics.get("numFilesAdded"),
            extra={"table": settings.table},
        )
