"""A unit's path from its lane to its booking: dedup, the handler call, failures, booking.

A unit is one record, or a batch of one partition's records for a batch handler
(actors.consumer.batches). `Handover.run` hands a lane's run over: each record as a unit
of its own (`_one`, the common case, allocating nothing it can spare) or the run as one
batch (`_unit`, which also takes a record whose trace id is in flight). Either way:

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
process, and retrying would only repeat it (the process's own Ctrl-C reaches the
supervisor as a signal, never as an exception inside a handler).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from actors.consumer.batches import BatchResult
from actors.consumer.dedup import UnreadableTraceIdError
from actors.consumer.failures import (
    Attempt,
    Call,
    FailurePath,
    MustExitError,
    Outcome,
    Refusal,
    where,
)
from actors.consumer.handler_calls import HandlerRunner
from actors.consumer.lanes import Work
from actors.consumer.retry_tiers.gate import TierMessage
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record
from core.errors import PermanentError
from core.logging.context import set_correlation_id
from core.logging.kafka_context import KafkaLogContext

__all__ = ["Handover", "record_of"]

_log = logging.getLogger(__name__)


def record_of(message: Any) -> Record:
    """The handler's `Record` of an aiokafka ConsumerRecord (or of a retry tier's record,
    which carries its attempt and origin: actors.consumer.retry_tiers.gate)."""
    if message.__class__ is TierMessage:
        tier_record: Record = message.to_record()
        return tier_record
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
        self._keys_in_retry = failures.keys_in_retry
        """Set when retry tiers keep key order (actors.consumer.retry_tiers.keys)."""
        self._in_flight_ids: dict[str, anyio.Event | None] = {}
        """Trace ids of records in flight; a waiter leaves an event to be woken by."""

    async def run(self, run: Sequence[Work], may_start: Callable[[Work], bool]) -> None:
        """Hand over `run`, records of one lane in offset order: one by one to a per-record
        handler, asking `may_start` before each, or as one batch to a batch handler. A
        record left unbooked (refused, stopped before, or behind a trace id in flight)
        goes back to its lane. Raises MustExitError."""
        tally = _Tally()
        try:
            if self._handler.batches:
                if may_start(run[0]):
                    await self._unit(run, tally)
                return
            one = self._one
            for work in run:
                if not may_start(work):
                    return
                await one(work, tally)
        finally:
            self._add_up(tally)

    async def _one(self, work: Work, tally: _Tally) -> None:
        """`_unit` for a unit of one record, the common case, with nothing to allocate
        on the way: admit, call, book; anything else is `_unit`'s business."""
        message = work.message
        record = record_of(message)
        if self._keys_in_retry is not None and await self._failures.held_back(record):
            self._book(Outcome.RETRY_SCHEDULED, (work,), (None,))
            return
        trace_id = self._trace_id(message) if self._state.trace_ids is not None else None
        if trace_id is not None:
            if trace_id in self._in_flight_ids:
                await self._unit((work,), tally)  # waits for the other one
                return
            dedup = self._state.dedup
            if dedup is not None and dedup.contains(trace_id):
                self._book(Outcome.DEDUPLICATED, (work,), (None,))
                return
            self._in_flight_ids[trace_id] = None
        try:
            with KafkaLogContext(message.topic, message.partition, message.offset, self._group):
                if trace_id is not None:  # the record's id on its log lines; ends with the block
                    set_correlation_id(trace_id)
                failure = await self._call([record], None, tally)
                if failure is not None:
                    await self._settle([work], [record], [trace_id], failure, tally)
                    return
            tally.handled += 1
            self._book(Outcome.HANDLED, (work,), (trace_id,))
        finally:
            if trace_id is not None:
                waiting = self._in_flight_ids.pop(trace_id, None)
                if waiting is not None:
                    waiting.set()

    async def _unit(self, unit: Sequence[Work], tally: _Tally) -> None:
        """Admit, call, settle and book one unit (module docstring, 1-4)."""
        works, records, trace_ids = await self._admit(unit)
        if not works:
            return
        first = records[0]
        try:
            with KafkaLogContext(first.topic, first.partition, first.offset, self._group):
                if trace_ids[0] is not None:
                    set_correlation_id(trace_ids[0])
                failure = await self._call(records, None, tally)
                if failure is None:
                    tally.handled += len(works)
                    self._book(Outcome.HANDLED, works, trace_ids)
                    return
                await self._settle(works, records, trace_ids, failure, tally)
        finally:
            for trace_id in trace_ids:
                if trace_id is not None:
                    waiting = self._in_flight_ids.pop(trace_id, None)
                    if waiting is not None:
                        waiting.set()

    async def _settle(
        self,
        works: list[Work],
        records: list[Record],
        trace_ids: list[str | None],
        failure: Attempt,
        tally: _Tally,
    ) -> None:
        """The failure path settles the unit (module docstring, 3); book what it decided."""
        self._add_up(tally)  # the poison window must be current before judging
        settlement = await self._failures.settle(records, failure, self._call_some(records, tally))
        for position, outcome in sorted(settlement.outcomes.items()):
            if outcome is Outcome.HANDLED:
                tally.handled += 1
            self._book(outcome, (works[position],), (trace_ids[position],))
        if settlement.refusal is not None:
            self._on_refusal(settlement.refusal)

    async def _admit(
        self, unit: Sequence[Work]
    ) -> tuple[list[Work], list[Record], list[str | None]]:
        """The unit without duplicates, its trace ids now in flight (module docstring, 1)."""
        works: list[Work] = []
        records: list[Record] = []
        trace_ids: list[str | None] = []
        in_flight, dedup = self._in_flight_ids, self._state.dedup
        trace_id_of = self._trace_id if self._state.trace_ids is not None else None
        for work in unit:
            message = work.message
            if self._keys_in_retry is not None and await self._failures.held_back(
                record_of(message)
            ):
                self._book(Outcome.RETRY_SCHEDULED, (work,), (None,))
                continue
            trace_id = trace_id_of(message) if trace_id_of is not None else None
            if trace_id is not None:
                if trace_id in in_flight:
                    if works:
                        break  # a batch ends before it; the rest goes back to the lane
                    while trace_id in in_flight:
                        waiting = in_flight[trace_id] or anyio.Event()
                        in_flight[trace_id] = waiting
                        await waiting.wait()
                if dedup is not None and dedup.contains(trace_id):
                    self._book(Outcome.DEDUPLICATED, (work,), (None,))
                    continue
                in_flight[trace_id] = None
            works.append(work)
            records.append(record_of(message))
            trace_ids.append(trace_id)
        return works, records, trace_ids

    def _call_some(self, records: list[Record], tally: _Tally) -> Call:
        async def call(positions: Sequence[int]) -> Attempt | None:
            return await self._call([records[p] for p in positions], positions, tally)

        return call

    async def _call(
        self, records: list[Record], positions: Sequence[int] | None, tally: _Tally
    ) -> Attempt | None:
        """One call of the handler on `records` (at `positions` of the unit, None: all);
        None when every record was handled, else how they failed (module docstring, 2)."""
        handler = self._handler
        breaker = self._state.breaker
        argument: Any = records if handler.batches else records[0]
        tally.calls += 1
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
            tally.seconds += time.perf_counter() - started
        if handler.batches and result is not None:
            return _failures_in(result, records, positions or range(len(records)))
        return None

    def _add_up(self, tally: _Tally) -> None:
        """Add the tallied calls and handled records to the stats, the retry budget and
        the poison window (once per run: nobody reads them per record), and start over."""
        if tally.calls:
            self._stats.observe_handler(tally.calls, tally.seconds)
            self._state.retry_budget.record_calls(tally.calls)
        if tally.handled:
            self._state.poison.observe_handled(tally.handled)
        tally.calls = tally.handled = 0
        tally.seconds = 0.0

    def _book(
        self, outcome: Outcome, works: Sequence[Work], trace_ids: Sequence[str | None]
    ) -> None:
        """The one place outcomes are booked (module docstring, 4): `works`, with their
        `trace_ids`, ended as `outcome`."""
        state, stats = self._state, self._stats
        poison = state.poison
        if outcome is Outcome.HANDLED:  # the poison window counts them with the run's tally
            dedup = state.dedup
            if dedup is not None:
                remember = dedup.remember
                for trace_id in trace_ids:
                    if trace_id is not None:
                        remember(trace_id)
            stats.handled += len(works)
        elif outcome is Outcome.DEDUPLICATED:
            stats.deduplicated += len(works)
        elif outcome is Outcome.DEAD_LETTERED:
            for _ in works:
                poison.observe_dead_lettered()
        keys = self._keys_in_retry
        if keys is not None and outcome is not Outcome.RETRY_SCHEDULED:
            for work in works:
                keys.ended(record_of(work.message))
        for work in works:
            work.tracker.finish(work.seq)
            work.done = True
        if outcome is Outcome.DEAD_LETTERED and poison.storming():
            raise MustExitError(
                PermanentError(poison.describe(), context={"group_id": self._group})
            )

    def _trace_id(self, message: Any) -> str | None:
        """The trace id of a fetched record (read from aiokafka's record: plain fields)."""
        reader = self._state.trace_ids
        if reader is None:
            return None
        try:
            return reader.read(message.value, message.headers)
        except UnreadableTraceIdError as exc:
            self._stats.dedup_undecodable += 1
            _log.debug(
                "no dedup for %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc
            )
            return None


@dataclass(slots=True)
class _Tally:
    """What a run did that is added up once per run (see `_add_up`)."""

    calls: int = 0
    seconds: float = 0.0
    handled: int = 0


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
