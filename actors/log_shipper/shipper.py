"""The log shipper: drains `ChannelHandler`'s buffer into sinks, in batches by size and time.

Every actor logs through the stdlib; a `ChannelHandler` on the root logger formats each
record where it was logged and puts the line into a `LogBuffer`, never waiting (a full
buffer drops its oldest line and counts it). `LogShipperActor` wakes when `batch_size`
lines wait or `flush_interval` seconds after the first line of a batch arrived,
whichever comes first, and writes the batch to each sink in turn.

Failure, decided by `core.errors.classify_exception` on the sink's exception:
- a sink that fails is retried `attempts_per_run` times with doubling backoff; then the
  shipper raises `LogSinkError` carrying the cause's category, and the supervisor
  restarts it as the taxonomy says. The batch stays in the buffer (owned by the wiring,
  with the sinks that already took it), so the restarted shipper delivers it first and no
  sink receives it twice;
- after `max_attempts` failures of one sink on one batch (over all restarts) that sink
  gives the batch up: it is counted as `abandoned`, and the shipper moves on;
- a PERMANENT failure is given up at once, then raised: a person must fix the sink.
A failing sink delays the sinks after it by at most its retry bound per batch.

Stop, as the supervisor does it (supervisor.runtime._child): `stop()` ends the wait for the next
batch, `run` delivers everything queued and returns; if the supervisor's shutdown timeout
runs out first, it cancels `run`, which then stops at once. Plain cancellation without
`stop()` (a task group's, say) delivers what is queued too, within `drain_timeout`
seconds and shielded, before re-raising. `flush()` delivers what is queued on demand.
Every exit closes the sinks (they reopen on the next write, so a restarted shipper, a
fresh object from the factory of the `ChildSpec`, reuses the same buffer and sinks; keep
the sinks in the same order, as the batch in flight remembers sinks by position).
Start the shipper first among the supervisor's children: children stop in reverse
order, so it is stopped last and ships the others' final records.

The shipper never logs: what it has to say about itself goes to stderr
(actors.log_shipper.diagnostics), so a broken sink cannot feed the buffer it drains. Libraries
a sink uses may still log (aiokafka reports connection failures): those records are
shipped like any other, paced by the retry backoff and bounded by the buffer.

Sinks receive `FormattedRecord`s (logger name and line), not bare strings, because the
Kafka sink keys each message by its logger's name.

Why not the breaker monitor's `ThreadBridge`: the shipper needs to sleep until a whole
batch is waiting (one wake-up per batch, not per record), to take a batch at once, and to
keep the batch in flight in the wiring's hands across restarts; `LogBuffer` does those.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.abc

from actors.log_shipper.buffer import LogBuffer, LogShipperStatistics, PendingBatch
from actors.log_shipper.diagnostics import report
from actors.log_shipper.sinks import LogSink
from core.errors import PipelineError, classify_exception
from core.logging.error_text import error_text
from core.types import ErrorCategory

__all__ = ["LogShipperActor", "LogSinkError", "SinkRetryPolicy"]


@dataclass(frozen=True, slots=True)
class SinkRetryPolicy:
    """How hard the shipper tries one sink with one batch (see the module docstring)."""

    attempts_per_run: int = 3
    """Attempts before the shipper raises for the supervisor to restart it."""
    max_attempts: int = 9
    """Attempts over all restarts before the sink gives the batch up."""
    backoff: float = 0.2
    """Seconds before the second attempt of a run; doubled for each further one."""

    def __post_init__(self) -> None:
        if not 1 <= self.attempts_per_run <= self.max_attempts:
            raise ValueError("need 1 <= attempts_per_run <= max_attempts")
        if self.backoff < 0:
            raise ValueError(f"backoff must be >= 0 seconds, got {self.backoff!r}")


class LogSinkError(PipelineError):
    """A sink kept failing on a batch; the category is that of the sink's last exception."""


class LogShipperActor:
    """Batches the buffer's records by size and time and writes them to every sink."""

    def __init__(
        self,
        buffer: LogBuffer,
        sinks: Sequence[LogSink],
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        retry: SinkRetryPolicy | None = None,
        drain_timeout: float = 5.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be > 0 seconds, got {flush_interval!r}")
        self._buffer = buffer
        self._sinks = tuple(sinks)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._clock = clock if clock is not None else anyio.current_time
        self._sleep = sleep if sleep is not None else anyio.sleep
        self._retry = retry if retry is not None else SinkRetryPolicy()
        self._drain_timeout = drain_timeout
        self._delivering = anyio.Lock()
        self._stop_requested = False
        self._waiting: anyio.CancelScope | None = None

    def statistics(self) -> LogShipperStatistics:
        """The buffer's counters: emitted, dropped, shipped, abandoned, errors, batches, queued."""
        return self._buffer.statistics()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Ship until stopped (then deliver what is queued and return) or a sink error is raised."""
        task_status.started()
        try:
            await self._ship_until_stopped()
            await self.flush()
        except anyio.get_cancelled_exc_class():
            if not self._stop_requested:
                with anyio.CancelScope(shield=True) as drain:
                    drain.deadline = anyio.current_time() + self._drain_timeout
                    await self._drain_reporting_failures()
            raise
        finally:
            with anyio.CancelScope(shield=True) as closing:
                closing.deadline = anyio.current_time() + self._drain_timeout
                await self._close_sinks()

    def stop(self) -> None:
        """Graceful stop (the supervisor's protocol): `run` delivers what is queued and returns.

        A batch being written is finished, not interrupted; only the wait for the next
        batch is cut short.
        """
        self._stop_requested = True
        if self._waiting is not None:
            self._waiting.cancel()

    async def flush(self) -> None:
        """Deliver every record queued now (and the batch in flight) to every sink."""
        async with self._delivering:
            remaining = self._buffer.statistics().queued
            while remaining > 0 and (batch := self._buffer.next_batch(self._batch_size)):
                remaining -= len(batch.records)
                await self._deliver(batch)

    async def _ship_until_stopped(self) -> None:
        async with self._delivering:
            pending = self._buffer.pending
            if pending is not None:
                await self._deliver(pending)
        while not self._stop_requested:
            self._waiting = anyio.CancelScope()
            with self._waiting:
                await self._buffer.wait_for_depth(1)
                await self._wait_for_full_batch(until=self._clock() + self._flush_interval)
            self._waiting = None
            async with self._delivering:
                batch = self._buffer.next_batch(self._batch_size)
                if batch is not None:
                    await self._deliver(batch)

    async def _wait_for_full_batch(self, *, until: float) -> None:
        if self._buffer.depth >= self._batch_size:
            return
        async with anyio.create_task_group() as race:
            race.start_soon(self._cancel_at, until, race.cancel_scope)
            await self._buffer.wait_for_depth(self._batch_size)
            race.cancel_scope.cancel()

    async def _cancel_at(self, deadline: float, scope: anyio.CancelScope) -> None:
        await self._sleep(max(0.0, deadline - self._clock()))
        scope.cancel()

    async def _deliver(self, batch: PendingBatch) -> None:
        unrecoverable: LogSinkError | None = None
        for position, sink in enumerate(self._sinks):
            if position not in batch.settled:
                unrecoverable = await self._deliver_to(position, sink, batch) or unrecoverable
        self._buffer.settle(batch)
        if unrecoverable is not None:
            raise unrecoverable

    async def _deliver_to(
        self, position: int, sink: LogSink, batch: PendingBatch
    ) -> LogSinkError | None:
        """Write `batch` to `sink`; raise to be restarted, or return a PERMANENT error to raise."""
        delay = self._retry.backoff
        attempt = 0
        while True:
            attempt += 1
            try:
                await sink.write(batch.records)
            except Exception as exc:
                self._buffer.count_sink_error()
                failures = batch.failures.get(position, 0) + 1
                batch.failures[position] = failures
                category = classify_exception(exc)
                if category is ErrorCategory.PERMANENT or failures >= self._retry.max_attempts:
                    self._give_up(position, batch, sink, exc, failures)
                    if category is ErrorCategory.PERMANENT:
                        return _sink_error(sink, batch, exc, category, failures)
                    return None
                if attempt >= self._retry.attempts_per_run:
                    raise _sink_error(sink, batch, exc, category, failures) from exc
                await self._sleep(delay)
                delay *= 2
            else:
                batch.settled.add(position)
                return None

    def _give_up(
        self, position: int, batch: PendingBatch, sink: LogSink, exc: Exception, failures: int
    ) -> None:
        batch.settled.add(position)
        batch.abandoned = True
        report(
            f"{sink!r} gave up a batch of {len(batch.records)} records after"
            f" {failures} failed attempts; last error: {type(exc).__name__}: {error_text(exc)}"
        )

    async def _drain_reporting_failures(self) -> None:
        try:
            await self.flush()
        except Exception as exc:
            queued = self._buffer.statistics().queued
            report(
                f"stopped with {queued} records undelivered: "
                f"{type(exc).__name__}: {error_text(exc)}"
            )

    async def _close_sinks(self) -> None:
        for sink in self._sinks:
            try:
                await sink.aclose()
            except Exception as exc:
                report(f"closing {sink!r} failed: {type(exc).__name__}: {error_text(exc)}")


def _sink_error(
    sink: LogSink, batch: PendingBatch, exc: Exception, category: ErrorCategory, failures: int
) -> LogSinkError:
    error = LogSinkError(
        f"log sink {sink!r} failed {failures} times on a batch of {len(batch.records)} records:"
        f" {type(exc).__name__}: {error_text(exc)}",
        category=category,
        retry_after=exc.retry_after if isinstance(exc, PipelineError) else None,
        context={"sink": repr(sink), "failures": failures, "category": category.value},
    )
    error.__cause__ = exc
    return error
