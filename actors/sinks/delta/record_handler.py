"""The Delta sink as a per-record handler with `before_commit`, for the sequential consumer.

Until batches come from the dispatcher, this adapter gives the consumer's per-record
handler interface the same exactly-once rows: each record is checked at once (a value
that cannot become a row raises its PERMANENT error, so the consumer dead-letters that
record alone) and kept in a buffer per partition; `before_commit()`, which the consumer
awaits before every Kafka commit, writes each partition's buffer as one Delta commit.
The consumer chooses the offsets to commit before it calls the hook, so every record
those offsets cover is in the buffer when it is written. A partition's buffer is also
written as soon as it holds `flush_records` records, which bounds memory and makes
files of a useful size; it is the batch size of this adapter.

A failed write leaves the buffer as it is (keyed by offset, so a redelivered record
replaces its copy); the commit is skipped and the next attempt writes it again, which
the sink makes idempotent.
"""

from __future__ import annotations

from typing import Final

from actors.messages import Record
from actors.sinks.delta.sink import DeltaSink, PartitionKey
from core.resilience import CircuitBreaker

__all__ = ["DeltaRecordHandler"]

DEFAULT_FLUSH_RECORDS: Final = 10_000


class DeltaRecordHandler:
    """`await handler(record)` buffers; `await handler.before_commit()` commits the buffers."""

    def __init__(self, sink: DeltaSink, *, flush_records: int = DEFAULT_FLUSH_RECORDS) -> None:
        if not 1 <= flush_records <= 1_000_000:
            raise ValueError(f"flush_records must be 1-1,000,000, got {flush_records}")
        self.sink = sink
        self.flush_records = flush_records
        self._buffers: dict[PartitionKey, dict[int, Record]] = {}

    def __repr__(self) -> str:
        return f"DeltaRecordHandler({self.sink!r})"

    def breakers(self) -> list[CircuitBreaker]:
        """The breaker the table is written through, for the breaker monitor to watch."""
        return [self.sink.breaker]

    async def __call__(self, record: Record) -> None:
        """Check the record and buffer it; write its partition's buffer when it is full."""
        error = self.sink.row_error(record)
        if error is not None:
            raise error
        key = (record.topic, record.partition)
        buffer = self._buffers.setdefault(key, {})
        buffer[record.offset] = record
        if len(buffer) >= self.flush_records:
            await self._flush(key)

    async def before_commit(self) -> None:
        """Write every partition's buffered records, one Delta commit per partition."""
        for key in list(self._buffers):
            await self._flush(key)

    async def aclose(self) -> None:
        """Close the sink (buffered records were not committed to Kafka: they come again)."""
        self._buffers.clear()
        await self.sink.aclose()

    async def _flush(self, key: PartitionKey) -> None:
        buffer = self._buffers.get(key)
        if not buffer:
            return
        records = [buffer[offset] for offset in sorted(buffer)]
        await self.sink(records)
        for record in records:  # records buffered while the write ran stay for the next one
            if buffer.get(record.offset) is record:
                del buffer[record.offset]
