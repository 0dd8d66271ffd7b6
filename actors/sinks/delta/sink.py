"""The Delta batch sink: one partition's batch of records becomes one Delta commit.

The commit holds the rows and a transaction identifier (app id `group/topic/partition`,
version = the batch's last offset). Before writing, records at or below the version
recorded for the partition are dropped: they are in the table already. So a batch
delivered again after a crash (the Kafka offset was not committed, the Delta commit
was) adds nothing, and each record is in the table exactly once.

The offset recorded per partition is cached with the partition's snapshot (see
actors.sinks.delta.table for why that is safe even when another process wrote the
partition meanwhile). It is read on the first batch of a partition and read again:

* after a commit lost to a concurrent writer: the other writer may have written some
  of these records, so they are filtered again from the fresh value, then committed
  again (up to `conflict_retries` times); the table's schema is checked again too;
* after any failed read or commit: the commit may have happened even though an error
  came back (a lost response), so the next attempt must not trust the cache;
* when the storage token changed (remote tables);
* after `forget()` of the partition (the caller calls it when the partition is
  revoked, which frees its snapshot).

A (re)assignment needs no re-read for correctness: if another process wrote the
partition while we did not own it, our next commit conflicts with its commit and the
rule above re-reads. Nor does a gap in offsets (compacted topics, transaction markers,
records filtered before batching): the version only says "everything up to here is in".

What the caller must guarantee: batches of one partition arrive one at a time and in
offset order (the sink also serialises them per partition); a record reported in
`failed` is dead-lettered, not offered to this sink again on the same partition (a later
batch may have moved the recorded offset past it). A failed record is reported again on
every delivery, because decoding does not depend on the table: a crash between our
commit and the dead-letter produce cannot lose it.

Blocking work (decoding, Parquet, storage) runs in a worker thread; the event loop only
waits. Failures raise `DeltaTableError` with its category, through a `CircuitBreaker`
(`breaker`) that the breaker monitor watches.

How a batch dispatcher uses it: `await sink(records)` for one partition's batch; a
normal return means the rows are durable and the batch's offsets may be committed,
except the records in `BatchOutcome.failed`, which are dead-lettered (PERMANENT each).
A raised error fails the whole batch by its category. A table-level PERMANENT error
(schema mismatch, permission) carries no record coordinates: splitting the batch cannot
isolate a bad record then. `open()` at start-up checks the table before anything is
consumed; `forget()` on revocation frees a partition's snapshot; `aclose()` at the end.
`DeltaBatchHandler` is this sink as the consumer's batch handler.

Memory: each partition's snapshot holds the table's active-file list; compaction keeps
it short.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence

import anyio
import anyio.to_thread

from actors.messages import Record
from actors.sinks.delta.compaction import Compactor
from actors.sinks.delta.errors import is_commit_conflict, to_delta_error
from actors.sinks.delta.outcome import BatchOutcome
from actors.sinks.delta.rows import DecodedBatch, RowDecoder
from actors.sinks.delta.settings import DeltaSinkSettings
from actors.sinks.delta.table import PartitionWriter, StorageAccess, ensure_table
from core.auth import AzureCredentialProvider
from core.errors import DeltaTableError, PipelineError
from core.resilience import ONELAKE_CIRCUIT_CONFIG, CircuitBreaker, CircuitBreakerConfig
from core.types import ErrorCategory

__all__ = ["DeltaSink", "PartitionKey", "build_delta_sink"]

PartitionKey = tuple[str, int]


class DeltaSink:
    """`await sink(records)` writes one partition's batch as one commit; see the module doc."""

    def __init__(
        self,
        settings: DeltaSinkSettings,
        *,
        group_id: str,
        credentials: AzureCredentialProvider | None = None,
        breaker_config: CircuitBreakerConfig = ONELAKE_CIRCUIT_CONFIG,
    ) -> None:
        if not group_id:
            raise ValueError("group_id is required: it names the writer in the table")
        self.settings = settings
        self.group_id = group_id
        self.breaker = CircuitBreaker(f"delta:{settings.table}", breaker_config)
        """Opens when the table keeps failing; hand it to the breaker monitor."""
        self._decoder = RowDecoder(settings)
        self._storage = StorageAccess(settings, credentials)
        self._compactor = Compactor(settings, lambda: self._storage.options(self._storage.token()))
        self._writers: dict[PartitionKey, PartitionWriter] = {}
        self._locks: defaultdict[PartitionKey, anyio.Lock] = defaultdict(anyio.Lock)
        self._table_ready = False
        self._table_lock = threading.Lock()
        self._closed = False
        self.conflicts_retried = 0
        """Commits lost to a concurrent writer and tried again (for tests and metrics)."""

    def __repr__(self) -> str:
        return f"DeltaSink({self.settings.table!r}, group_id={self.group_id!r})"

    def app_id(self, topic: str, partition: int) -> str:
        """The transaction app id of a partition: `group/topic/partition`."""
        return f"{self.group_id}/{topic}/{partition}"

    async def open(self) -> None:
        """Create or check the table now (else the first batch does): fail before consuming."""
        await self.breaker.call_async(anyio.to_thread.run_sync, self._ensure_table, None)

    async def __call__(self, records: Sequence[Record]) -> BatchOutcome:
        """Write `records` (one partition, offset order) as one commit; raise if not durable."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if not records:
            return BatchOutcome()
        key = _partition_of(records)
        async with self._locks[key]:
            return await self.breaker.call_async(
                anyio.to_thread.run_sync, self._write_batch, key, records
            )

    def row_error(self, record: Record) -> PipelineError | None:
        """Why `record` cannot become a row (PERMANENT), or None if it can."""
        failed = self._decoder.decode([record]).failed
        return failed[0].error if failed else None

    def forget(self, topic: str, partition: int) -> None:
        """Drop a revoked partition's snapshot; its next batch reads the table again."""
        self._writers.pop((topic, partition), None)

    async def aclose(self) -> None:
        """Stop taking batches, wait for a running compaction, free the snapshots."""
        self._closed = True
        await anyio.to_thread.run_sync(self._compactor.close)
        self._writers.clear()

    # -- in a worker thread ------------------------------------------------------

    def _write_batch(self, key: PartitionKey, records: Sequence[Record]) -> BatchOutcome:
        decoded = self._decoder.decode(records)
        last_offset = records[-1].offset
        for attempt in range(self.settings.conflict_retries + 1):
            writer = self._writer(key)
            outcome = self._commit(key, writer, decoded, last_offset)
            if outcome is not None:
                return outcome
            if attempt < self.settings.conflict_retries:
                self.conflicts_retried += 1
        raise DeltaTableError(
            f"Delta table {self.settings.table!r}: commit of {key[0]}[{key[1]}] lost to "
            f"concurrent writers {self.settings.conflict_retries + 1} times",
            category=ErrorCategory.TRANSIENT,
            context={"table": self.settings.table, "topic": key[0], "partition": key[1]},
        )

    def _commit(
        self, key: PartitionKey, writer: PartitionWriter, decoded: DecodedBatch, last_offset: int
    ) -> BatchOutcome | None:
        """Commit the rows above the recorded offset; None when a concurrent commit won."""
        already = decoded.count_at_or_below(writer.version)
        rows = decoded.rows_above(writer.version)
        failed = tuple(decoded.failed)
        if rows is None:
            return BatchOutcome(written=0, already_written=already, failed=failed)
        try:
            writer.commit(rows, last_offset)
        except Exception as exc:
            self._writers.pop(key, None)  # the commit may have happened: read again
            if is_commit_conflict(exc):
                self._table_ready = False  # the winner may have changed the schema too
                return None
            error = to_delta_error(
                exc, self.settings.table, "commit", token_in_use=writer.token is not None
            )
            if error.category is ErrorCategory.AUTH:
                self._storage.refresh_token_next_time()
            raise error from exc
        self._compactor.note_commit()
        return BatchOutcome(written=rows.num_rows, already_written=already, failed=failed)

    def _writer(self, key: PartitionKey) -> PartitionWriter:
        token = self._storage.token()
        writer = self._writers.get(key)
        if writer is not None and writer.token == token:
            return writer
        self._ensure_table(token)
        try:
            writer = PartitionWriter(
                self.settings.table, self.app_id(*key), self._storage.options(token), token
            )
        except PipelineError as error:
            if error.category is ErrorCategory.AUTH:
                self._storage.refresh_token_next_time()
            raise
        self._writers[key] = writer
        return writer

    def _ensure_table(self, token: str | None = None) -> None:
        with self._table_lock:
            if self._table_ready:
                return
            if token is None:
                token = self._storage.token()
            ensure_table(self.settings, self._decoder.schema, self._storage.options(token))
            self._table_ready = True


def build_delta_sink(
    settings: DeltaSinkSettings,
    *,
    group_id: str,
    credentials: AzureCredentialProvider | None = None,
) -> DeltaSink:
    """The sink the `[delta]` configuration describes, for consumer group `group_id`."""
    return DeltaSink(settings, group_id=group_id, credentials=credentials)


def _partition_of(records: Sequence[Record]) -> PartitionKey:
    first = records[0]
    key = (first.topic, first.partition)
    previous = first.offset - 1
    for record in records:
        if (record.topic, record.partition) != key or record.offset <= previous:
            raise RuntimeError(
                "a Delta batch must be one partition's records in increasing offset order; "
                f"got {record.topic}[{record.partition}]@{record.offset} in a batch of "
                f"{key[0]}[{key[1]}] after offset {previous}"
            )
        previous = record.offset
    return key
