"""A unit's path from its lane to its booking: dedup, the handler call, failures, booking.

A unit is one record, or a batch of one partition's records for a batch handler
(actors.consumer.batches). `Handover.run` is the whole path, on one screen:

1. `_admit`: read each record's trace id; a record whose id is in flight in another
   unit waits for it (a batch ends before such a record instead), then one the dedup
   window knows is booked as a duplicate. What is left is the unit, its ids in flight.
2. `_call`: one call of the handler, through its circuit breaker, inside the first
   record's KafkaLogContext, timed. A synchronous handler runs in a worker thread of a
   pool as wide as `max_in_flight` (`to_thread.run_sync` with a CapacityLimiter): the
   async and the sync call differ by that one await. The thread cannot be interrupted,
   so a cancellation waits for the call in hand and its booking.
3. on failure: actors.consumer.failures settles the unit (retries in place, a dead
   letter, a refusal) or raises MustExitError.
4. `_book`: the one place an outcome is booked: the counters, the poison window, the
   dedup window, and the record's offset is finished in its partition's tracker.

Handler errors and pipeline bugs are told apart by where they are raised: what the
handler raises (step 2) is judged by its category; anything else raised here is a bug
in the pipeline and reaches the dispatcher as such (never a dead letter). A handler
that raises SystemExit or KeyboardInterrupt has failed on that record PERMANENTly
(dead-lettered, with a message saying so): a handler has no business ending the
process, and retrying would only repeat it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from actors.consumer.batches import BatchResult
from actors.consumer.dedup import UnreadableTraceIdError
from actors.consumer.failures import Attempt, FailurePath, MustExitError, Outcome, Refusal, where
from actors.consumer.handler import HandlerRunner
from actors.consumer.lanes import Work
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record
from core.errors import PermanentError
from core.logging.kafka_context import KafkaLogContext

__all__ = ["Handover", "record_of"]

_log = logging.getLogger(__name__)


def record_of(message: Any) -> Record:
    """The handler's `Record` of an aiokafka ConsumerRecord."""
    return Record(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        message.headers,  # aiokafka gives a tuple of (str, bytes) pairs
        message.timestamp,
    )


class Handover:
    """Runs units of work through the handler and books them (see the module docstring)."""

    def __init__(
        self,
        settings: ConsumerSettings,
        state: ConsumerState,
        handler: HandlerRunner,
        failures: FailurePath,
        *,
        on_refusal: Callable[[Refusal], None],
    ) -> None:
        self._group = settings.group_id
        self._state = state
        self._stats = state.stats
        self._handler = handler
        self._failures = failures
        self._on_refusal = on_refusal
        self._threads = anyio.CapacityLimiter(settings.max_in_flight)
        self._in_flight_ids: dict[str, anyio.Event | None] = {}
        """Trace ids of records in flight; a waiter leaves an event to be woken by."""

    async def run(self, unit: list[Work]) -> None:
        """Hand `unit` over and book what became of it; a record left unbooked (refused,
        or behind a trace id in flight) goes back to its lane. Raises MustExitError."""
        admitted = await self._admit(unit)
        if not admitted:
            return
        works = [work for work, _, _ in admitted]
        records = [record for _, record, _ in admitted]
        first = records[0]
        try:
            with KafkaLogContext(first.topic, first.partition, first.offset, self._group):
                failure = await self._call(records, range(len(records)))
                if failure is None:
                    for work, _, trace_id in admitted:
                        self._book(work, Outcome.HANDLED, trace_id)
                    return
                settlement = await self._failures.settle(records, failure, self._call_some(records))
            for position, outcome in sorted(settlement.outcomes.items()):
                self._book(works[position], outcome, admitted[position][2])
            if settlement.refusal is not None:
                self._on_refusal(settlement.refusal)
        finally:
            for _, _, trace_id in admitted:
                if trace_id is not None:
                    waiting = self._in_flight_ids.pop(trace_id, None)
                    if waiting is not None:
                        waiting.set()

    async def _admit(self, unit: list[Work]) -> list[tuple[Work, Record, str | None]]:
        """The unit without duplicates, its trace ids now in flight (module docstring, 1)."""
        admitted: list[tuple[Work, Record, str | None]] = []
        in_flight, dedup = self._in_flight_ids, self._state.dedup
        for work in unit:
            record = record_of(work.message)
            trace_id = self._trace_id(record)
            if trace_id is not None:
                if trace_id in in_flight:
                    if admitted:
                        break  # a batch ends before it; the rest goes back to the lane
                    while trace_id in in_flight:
                        waiting = in_flight[trace_id] or anyio.Event()
                        in_flight[trace_id] = waiting
                        await waiting.wait()
                if dedup is not None and dedup.contains(trace_id):
                    self._book(work, Outcome.DEDUPLICATED, None)
                    continue
                in_flight[trace_id] = None
            admitted.append((work, record, trace_id))
        return admitted

    def _call_some(self, records: list[Record]) -> Callable[[Sequence[int]], Any]:
        async def call(positions: Sequence[int]) -> Attempt | None:
            return await self._call([records[p] for p in positions], positions)

        return call

    async def _call(self, records: list[Record], positions: Sequence[int]) -> Attempt | None:
        """One call of the handler on `records` (at `positions` of the unit); None when
        every record was handled, else how they failed (module docstring, 2)."""
        handler = self._handler
        breaker = self._state.breaker
        argument: Any = records if handler.batches else records[0]
        self._state.retry_budget.record_call()
        started = time.perf_counter()
        try:
            if handler.in_thread:
                await anyio.lowlevel.checkpoint_if_cancelled()  # the shield would hide it
                with anyio.CancelScope(shield=True):
                    result = await anyio.to_thread.run_sync(
                        breaker.call, handler.in_worker_thread, argument, limiter=self._threads
                    )
            else:
                result = await breaker.call_async(handler.on_loop, argument)
        except Exception as exc:
            return Attempt(whole=exc)
        except (SystemExit, KeyboardInterrupt) as exc:
            error = PermanentError(
                f"the handler raised {type(exc).__name__}({exc}) on {where(records[0])}: "
                "a handler may not end the process; the record is failed permanently"
            )
            error.__cause__ = exc
            return Attempt(whole=error)
        finally:
            self._stats.observe_handler(1, time.perf_counter() - started)
        if handler.batches and result is not None:
            return _failures_in(result, records, positions)
        return None

    def _book(self, work: Work, outcome: Outcome, trace_id: str | None) -> None:
        """The one place a record's outcome is booked (module docstring, 4)."""
        state, stats = self._state, self._stats
        poison = state.poison
        if outcome is Outcome.HANDLED:
            if trace_id is not None and state.dedup is not None:
                state.dedup.remember(trace_id)
            stats.handled += 1
            poison.observe_handled()
        elif outcome is Outcome.DEDUPLICATED:
            stats.deduplicated += 1
        else:
            poison.observe_dead_lettered()
        work.tracker.finish(work.seq)
        work.done = True
        if outcome is Outcome.DEAD_LETTERED and poison.storming():
            raise MustExitError(
                PermanentError(poison.describe(), context={"group_id": self._group})
            )

    def _trace_id(self, record: Record) -> str | None:
        reader = self._state.trace_ids
        if reader is None:
            return None
        try:
            return reader.read(record.value, record.headers)
        except UnreadableTraceIdError as exc:
            self._stats.dedup_undecodable += 1
            _log.debug("no dedup for %s: %s", where(record), exc)
            return None


def _failures_in(result: object, records: list[Record], positions: Sequence[int]) -> Attempt | None:
    """A batch handler's result as an Attempt (by position in the unit)."""
    if not isinstance(result, BatchResult):
        raise MustExitError(
            PermanentError(
                f"a batch handler must return a BatchResult or None, got {type(result).__name__}"
            )
        )
    if not result.failed:
        return None
    by_offset = {r.offset: position for r, position in zip(records, positions, strict=True)}
    unknown = set(result.failed) - set(by_offset)
    if unknown:
        raise MustExitError(
            PermanentError(
                f"a batch handler's result names offsets not in its batch: {sorted(unknown)}"
            )
        )
    return Attempt(each={by_offset[offset]: error for offset, error in result.failed.items()})
