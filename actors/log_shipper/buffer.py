"""The bounded, thread-safe buffer between `ChannelHandler` and the log shipper.

Logging happens on any thread, and anyio memory streams are not thread-safe, so the
handover is a `collections.deque` guarded by a `threading.Lock` that is held only for a
few instructions: a put never waits for the consumer, and a full buffer drops its oldest
records and counts the drops. Full means `capacity` lines, or `max_chars` characters of
lines in total (the size of a JSON line in memory is about one byte per character): a
burst of very long lines (a huge exception message, before the formatter's line limit
or with a large one) must not hold gigabytes while the shipper is slow. The newest line
is always kept, even alone over `max_chars`.

The consumer (the shipper, on the event loop) sleeps until the buffer holds a given
number of records; a producer wakes it through the loop's thread-safe entry point only
when it crosses that number, so a burst costs one wake-up per batch, not one per record.

The wiring owns the buffer and it outlives any shipper: the batch in flight when a
shipper failed (`pending`, with the sinks that already accepted it) and every counter
survive the shipper's restart. One consumer at a time takes from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import anyio

__all__ = [
    "DEFAULT_MAX_CHARS",
    "FormattedRecord",
    "LogBuffer",
    "LogShipperStatistics",
    "PendingBatch",
]

DEFAULT_MAX_CHARS: Final = 32 * 1024 * 1024
"""Characters of lines a buffer holds at most, unless told otherwise (about 32 MB)."""


class FormattedRecord(NamedTuple):
    """One log record as shipped: its logger's name (a Kafka key) and its formatted line."""

    logger: str
    line: str


@dataclass(slots=True)
class PendingBatch:
    """The batch being delivered; kept in the buffer until every sink has settled it.

    `settled` holds the positions (in the shipper's sink sequence) of the sinks that
    accepted the batch or gave up on it, so a retry after a restart skips them;
    `failures` counts the failed writes of each sink position on this batch.
    """

    records: list[FormattedRecord]
    settled: set[int] = field(default_factory=set)
    failures: dict[int, int] = field(default_factory=dict)
    abandoned: bool = False


@dataclass(frozen=True, slots=True)
class LogShipperStatistics:
    """Counters of one buffer since it was made (anyio's `statistics()` style).

    emitted == shipped + abandoned + dropped + queued at every instant.
    """

    emitted: int
    """Records handed to the buffer."""
    dropped: int
    """Oldest records evicted because the buffer was full."""
    shipped: int
    """Records of batches every sink accepted."""
    abandoned: int
    """Records of batches some sink gave up on after its retry bound."""
    sink_errors: int
    """Failed sink writes (each attempt counts)."""
    batches: int
    """Batches settled, shipped or abandoned."""
    queued: int
    """Records waiting, including the batch in flight."""
    capacity: int
    """How many records wait at most before the oldest are dropped (besides the batch in flight)."""
    queued_chars: int = 0
    """Characters of the records waiting, not counting the batch in flight."""


class _Waiter(NamedTuple):
    depth: int
    wake: Callable[[], None]


class LogBuffer:
    """Bounded FIFO of formatted records: put from any thread, take on the event loop."""

    def __init__(self, capacity: int, *, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars!r}")
        self._capacity = capacity
        self._max_chars = max_chars
        self._chars = 0
        self._records: deque[FormattedRecord] = deque()
        self._lock = threading.Lock()
        self._waiter: _Waiter | None = None
        self._pending: PendingBatch | None = None
        self._emitted = 0
        self._dropped = 0
        self._shipped = 0
        self._abandoned = 0
        self._sink_errors = 0
        self._batches = 0

    @property
    def capacity(self) -> int:
        """The most records that wait before the oldest are dropped."""
        return self._capacity

    @property
    def max_chars(self) -> int:
        """The most characters of lines that wait before the oldest are dropped."""
        return self._max_chars

    @property
    def depth(self) -> int:
        """Records waiting, not counting the batch in flight."""
        return len(self._records)

    @property
    def pending(self) -> PendingBatch | None:
        """The batch in flight (taken but not yet settled), if any."""
        return self._pending

    def put(self, record: FormattedRecord) -> None:
        """Append `record` from any thread without waiting; when full, drop the oldest."""
        with self._lock:
            records = self._records
            records.append(record)
            self._emitted += 1
            self._chars += len(record.line)
            while len(records) > self._capacity or (
                self._chars > self._max_chars and len(records) > 1
            ):
                self._chars -= len(records.popleft().line)
                self._dropped += 1
            waiter = self._waiter
            if waiter is None or len(records) < waiter.depth:
                return
            self._waiter = None
        waiter.wake()

    async def wait_for_depth(self, depth: int) -> None:
        """Return once at least `depth` records wait; call on the event loop of the consumer."""
        loop = asyncio.get_running_loop()
        arrived = anyio.Event()
        waiter = _Waiter(depth, lambda: _call_soon_threadsafe(loop, arrived.set))
        with self._lock:
            if len(self._records) >= depth:
                return
            self._waiter = waiter
        try:
            await arrived.wait()
        finally:
            with self._lock:
                if self._waiter is waiter:
                    self._waiter = None

    def next_batch(self, limit: int) -> PendingBatch | None:
        """The batch to deliver next: the one in flight, else up to `limit` oldest records."""
        with self._lock:
            if self._pending is not None:
                return self._pending
            records = self._records
            if not records:
                return None
            if len(records) <= limit:
                taken = list(records)
                records.clear()
                self._chars = 0
            else:
                taken = [records.popleft() for _ in range(limit)]
                self._chars -= sum(len(record.line) for record in taken)
            self._pending = PendingBatch(taken)
            return self._pending

    def settle(self, batch: PendingBatch) -> None:
        """Count `batch` as shipped (or abandoned) and release it."""
        with self._lock:
            if self._pending is batch:
                self._pending = None
            if batch.abandoned:
                self._abandoned += len(batch.records)
            else:
                self._shipped += len(batch.records)
            self._batches += 1

    def count_sink_error(self) -> None:
        """Count one failed sink write."""
        with self._lock:
            self._sink_errors += 1

    def statistics(self) -> LogShipperStatistics:
        """A consistent snapshot of the counters."""
        with self._lock:
            pending = len(self._pending.records) if self._pending is not None else 0
            return LogShipperStatistics(
                emitted=self._emitted,
                dropped=self._dropped,
                shipped=self._shipped,
                abandoned=self._abandoned,
                sink_errors=self._sink_errors,
                batches=self._batches,
                queued=len(self._records) + pending,
                capacity=self._capacity,
                queued_chars=self._chars,
            )


def _call_soon_threadsafe(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    # A closed loop raises RuntimeError: nobody waits any more and the records stay queued.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)
