"""The Delta sink as the consumer's batch handler: one batch of a partition, one Delta commit.

The consumer's dispatcher hands a batch handler one partition's records in offset order,
up to `[handler] batch_max_records`, waiting at most `batch_max_wait_ms` for more
(actors.consumer.batches). Each batch goes to the sink as it is: one Delta commit of
its rows, with the partition's transaction identifier (actors.sinks.delta.sink).

No `before_commit()`: the call returns only once the Delta commit is durable, and the
consumer books a batch's records (which lets a Kafka commit cover them) only after the
call returned, so a Kafka commit never covers a row that is not in the table. A hook
that wrote buffers before each Kafka commit would only add a second write path and
hold every commit back behind the slowest table write.

What goes where when something fails:

* a record that cannot become a row (not the configured JSON, a field that does not
  convert) is named in the result with its PERMANENT error: the consumer dead-letters
  it alone, and the other rows of its batch are in the same commit;
* a failure of the table a retry may fix (TRANSIENT, AUTH, UNKNOWN, a commit lost to
  concurrent writers too often) fails the whole batch: the consumer retries it, which
  the transaction identifier makes idempotent;
* a PERMANENT failure of the table (a schema that does not match, a refused
  permission, a missing container) is nobody's record's fault, so it is raised as a
  `ConfigurationError`: the consumer exits with it instead of splitting the batch and
  dead-lettering every record in turn, and nothing of the batch is committed; a person
  fixes the table and the records come again.
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.consumer import BatchHandler, BatchResult
from actors.messages import Record
from actors.sinks.delta.sink import DeltaSink
from core.errors import ConfigurationError, DeltaTableError
from core.resilience import CircuitBreaker
from core.types import ErrorCategory

__all__ = ["DeltaBatchHandler"]


class DeltaBatchHandler(BatchHandler):
    """`await handler(records)` writes one partition's batch as one Delta commit and
    returns the records that cannot become rows as failed (see the module docstring)."""

    def __init__(self, sink: DeltaSink) -> None:
        super().__init__(self._write)
        self.sink = sink

    def __repr__(self) -> str:
        return f"DeltaBatchHandler({self.sink!r})"

    def breakers(self) -> list[CircuitBreaker]:
        """The breaker the table is written through, for the breaker monitor to watch."""
        return [self.sink.breaker]

    async def aclose(self) -> None:
        """Close the sink (called once, after the consumer stopped for good)."""
        await self.sink.aclose()

    async def _write(self, records: Sequence[Record]) -> BatchResult:
        try:
            outcome = await self.sink(records)
        except DeltaTableError as error:
            if error.category is not ErrorCategory.PERMANENT:
                raise
            raise ConfigurationError(
                f"{error.message} (the table refuses every record; fix the table or its "
                "access, then start again: the records are delivered again)",
                context=error.context,
            ) from error
        return BatchResult({failure.record.offset: failure.error for failure in outcome.failed})
