"""Batch handlers: a handler given a sequence of one partition's records at a time.

    @batch_handler
    async def append(records: Sequence[Record]) -> BatchResult | None:
        rows = [...]
        failures = await table.insert(rows)             # e.g. a bulk insert
        return BatchResult({r.offset: err for r, err in failures})

What sinks want: bulk inserts, Delta table appends, Kusto ingestion. A batch is one
partition's records in offset order, at most `batch_max_records`, formed from what is
queued and waiting at most `batch_max_wait_ms` for more (actors.consumer.dispatcher).
Batches of different partitions run concurrently within `max_in_flight`; records a
dedup window already knows are left out before the batch is formed.

The result says which records failed: returning None (or a BatchResult with no
failures) means every record was handled. Failed records are judged one by one like a
per-record handler's failures: TRANSIENT ones are retried (the handler is called
again with just them), PERMANENT ones are dead-lettered. When the call itself raises,
the error is the whole batch's: TRANSIENT retries the whole batch; PERMANENT is split
in halves, each tried again, down to the records that fail on their own, so only they
are dead-lettered (a record that fails only in company is handled by its half).

`before_commit` works as for any handler: give the wrapped function's object one, or
pass `before_commit=` here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from actors.messages import Record

__all__ = ["BatchHandler", "BatchResult", "batch_handler"]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The records of a batch that failed, by offset, with what each failed with."""

    failed: Mapping[int, Exception] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        for offset, error in self.failed.items():
            if not isinstance(error, Exception):
                raise TypeError(
                    f"BatchResult.failed[{offset!r}] must be an Exception, got {error!r}"
                )


BatchFunction = Callable[[Sequence[Record]], Awaitable[BatchResult | None] | BatchResult | None]


class BatchHandler:
    """A handler of batches (see the module docstring); build it with `batch_handler`."""

    def __init__(
        self, function: BatchFunction, *, before_commit: Callable[[], Any] | None = None
    ) -> None:
        if not callable(function):
            raise TypeError(f"the batch handler must be callable, got {function!r}")
        self.function = function
        hook = (
            before_commit if before_commit is not None else getattr(function, "before_commit", None)
        )
        if hook is not None:
            self.before_commit = hook

    def __call__(
        self, records: Sequence[Record]
    ) -> Awaitable[BatchResult | None] | BatchResult | None:
        """Call the function on `records` (what the consumer does)."""
        return self.function(records)


def batch_handler(function: BatchFunction) -> BatchHandler:
    """Mark `function` (sync or async, taking a sequence of records) as a batch handler."""
    return BatchHandler(function)
