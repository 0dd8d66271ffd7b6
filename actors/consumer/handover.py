"""A unit's path from its lane to its booking: dedup, the handler call, failures, booking.

A unit is one record, or a batch of one partition's records for a batch handler
(actors.consumer.batches). `Handover.run` hands a lane's run (spans of fetched records,
actors.consumer.lanes) over: each record as a unit of its own (`_records`, the common
case: one loop over the run that allocates nothing per record but the handler's Record,
its log context and its slot) or the run as one batch (`_unit`, which also takes a
record whose trace id is in flight). Either way:

1. admit (`_admit` for a batch, inline in `_records`): read each record's trace id; a
   record whose id is in flight in another unit waits for it (a batch ends before such
   a record instead), then one the dedup window knows is booked as a duplicate. What is
   left is the unit, its ids in flight (not tracked for one record at a time: no other
   record can hold an id then). A batch is asked about at once (`_admit_at_once`: set
   operations over its ids) and looked at record by record only when one needs it.
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any, cast

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
from actors.consumer.lanes import Span
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.retry_tiers.gate import TierMessage
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record
from core.errors import PermanentError
from core.logging.kafka_context import KafkaLogContext

__all__ = ["Handover", "Slot", "record_of"]

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


Slot = tuple[PartitionOffsets, int]
"""Where a record is tracked: its partition's tracker and its sequence number there."""


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
        self._invoke: Callable[[Any], Awaitable[object]] = (
            self._in_thread if handler.in_thread else self._on_loop
        )
        """The handler's call on one argument, through its breaker, to be awaited."""
        self._in_flight_ids: dict[str, anyio.Event | None] | None = (
            {} if settings.max_in_flight > 1 or handler.batches else None
        )
        """Trace ids of records in flight, a waiter leaving an event to be woken by (a
        batch also ends before an id it holds already); None with one record in flight
        at a time, when no other record can hold an id."""

    async def run(self, run: Sequence[Span], may_start: Callable[[PartitionOffsets], bool]) -> bool:
        """Hand over `run`, records of one lane in offset order: one by one to a per-record
        handler, asking `may_start` before each, or as one batch to a batch handler. A
        record left unbooked (refused, stopped before, or behind a trace id in flight)
        goes back to its lane. Returns True when every record of the run was booked.
        Raises MustExitError."""
        tally = _Tally()
        try:
            if self._handler.batches:
                if not may_start(run[0].tracker):
                    return False
                return await self._unit(run, tally)
            return await self._records(run, may_start, tally)
        finally:
            self._add_up(tally)

    async def _records(
        self, run: Sequence[Span], may_start: Callable[[PartitionOffsets], bool], tally: _Tally
    ) -> bool:
        """The per-record path, a unit per record, with nothing allocated on the way but
        the handler's Record and its log context: admit (a duplicate is booked as such, an
        id in flight elsewhere goes through `_unit`, which waits), call, book. Stops at the
        first record that may not start or was not booked (refused)."""
        reader, dedup, in_flight = self._state.trace_ids, self._state.dedup, self._in_flight_ids
        read = reader.read if reader is not None else None
        group, invoke, book, clock = self._group, self._invoke, self._book, time.perf_counter
        keyed = self._keys_in_retry is not None
        for span in run:
            messages, tracker, first_seq = span.messages, span.tracker, span.first_seq
            for position in span.positions:
                if not may_start(tracker):
                    return False
                message = messages[position]
                seq = first_seq + position
                if keyed and await self._held_back(message, tracker, seq):
                    continue
                trace_id = None
                if read is not None:
                    try:
                        trace_id = read(message.value, message.headers)
                    except UnreadableTraceIdError as exc:
                        self._unreadable(message, exc)
                if trace_id is not None:
                    if in_flight is not None and trace_id in in_flight:
                        if not await self._unit((_single(span, position),), tally):
                            return False  # waited for the other one
                        continue
                    if dedup is not None and dedup.contains(trace_id):
                        book(Outcome.DEDUPLICATED, tracker, seq, None, self._keyed(message))
                        continue
                    if in_flight is not None:
                        in_flight[trace_id] = None
                try:
                    with KafkaLogContext(
                        message.topic, message.partition, message.offset, group, trace_id
                    ):
                        record = record_of(message)
                        tally.calls += 1  # `_call` for one record, without its frame
                        started = clock()
                        try:
                            await invoke(record)
                        except (Exception, SystemExit, KeyboardInterrupt) as exc:
                            failure: Attempt | None = _attempt(exc, record)
                        else:
                            failure = None
                        finally:
                            tally.seconds += clock() - started
                        if failure is not None:
                            settled = await self._settle(
                                [(tracker, seq)], [record], [trace_id], failure, tally
                            )
                            failure = None  # its error's traceback holds this frame: a cycle
                            if not settled:
                                return False
                            continue
                    tally.handled += 1
                    book(Outcome.HANDLED, tracker, seq, trace_id, record)
                finally:
                    if trace_id is not None and in_flight is not None:
                        waiting = in_flight.pop(trace_id, None)
                        if waiting is not None:
                            waiting.set()
        return True

    async def _unit(self, unit: Sequence[Span], tally: _Tally) -> bool:
        """Admit, call, settle and book one unit (module docstring, 1-4); True when every
        record of `unit` was booked."""
        slots, records, trace_ids, whole = await self._admit(unit)
        if not slots:
            return whole
        first = records[0]
        try:
            with KafkaLogContext(
                first.topic, first.partition, first.offset, self._group, trace_ids[0]
            ):
                failure = await self._call(records, None, tally)
                if failure is None:
                    tally.handled += len(slots)
                    self._book_handled(slots, trace_ids, records)
                    return whole
                return await self._settle(slots, records, trace_ids, failure, tally) and whole
        finally:
            in_flight = self._in_flight_ids
            if in_flight is not None:
                for trace_id in trace_ids:
                    if trace_id is not None:
                        waiting = in_flight.pop(trace_id, None)
                        if waiting is not None:
                            waiting.set()

    async def _settle(
        self,
        slots: list[Slot],
        records: list[Record],
        trace_ids: list[str | None],
        failure: Attempt,
        tally: _Tally,
    ) -> bool:
        """The failure path settles the unit (module docstring, 3); book what it decided.
        True when every record got an outcome (none was refused)."""
        self._add_up(tally)  # the poison window must be current before judging
        settlement = await self._failures.settle(records, failure, self._call_some(records, tally))
        for position, outcome in sorted(settlement.outcomes.items()):
            if outcome is Outcome.HANDLED:
                tally.handled += 1
            self._book(outcome, *slots[position], trace_ids[position], records[position])
        if settlement.refusal is not None:
            self._on_refusal(settlement.refusal)
        return len(settlement.outcomes) == len(slots)

    async def _admit(
        self, unit: Sequence[Span]
    ) -> tuple[list[Slot], list[Record], list[str | None], bool]:
        """The unit without duplicates, its trace ids now in flight, and whether that is
        all of it (module docstring, 1)."""
        if self._keys_in_retry is None:
            admitted = self._admit_at_once(unit)
            if admitted is not None:
                return admitted
        slots: list[Slot] = []
        records: list[Record] = []
        trace_ids: list[str | None] = []
        in_flight, dedup = self._in_flight_ids, self._state.dedup
        reader = self._state.trace_ids
        read = reader.read if reader is not None else None
        duplicates: list[tuple[PartitionOffsets, int, Any]] = []
        keyed = self._keys_in_retry is not None
        for span in unit:
            messages, tracker, first_seq = span.messages, span.tracker, span.first_seq
            for position in span.positions:
                message = messages[position]
                if keyed and await self._held_back(message, tracker, first_seq + position):
                    continue
                trace_id = None
                if read is not None:
                    try:
                        trace_id = read(message.value, message.headers)
                    except UnreadableTraceIdError as exc:
                        self._unreadable(message, exc)
                if trace_id is not None:
                    if in_flight is not None and trace_id in in_flight:
                        if slots:  # a batch ends before it; the rest goes back to the lane
                            self._book_duplicates(duplicates)
                            return slots, records, trace_ids, False
                        while trace_id in in_flight:
                            waiting = in_flight[trace_id] or anyio.Event()
                            in_flight[trace_id] = waiting
                            await waiting.wait()
                    if dedup is not None and dedup.contains(trace_id):
                        duplicates.append((tracker, first_seq + position, message))
                        continue
                    if in_flight is not None:
                        in_flight[trace_id] = None
                slots.append((tracker, first_seq + position))
                records.append(record_of(message))
                trace_ids.append(trace_id)
        self._book_duplicates(duplicates)
        return slots, records, trace_ids, True

    def _admit_at_once(
        self, unit: Sequence[Span]
    ) -> tuple[list[Slot], list[Record], list[str | None], bool] | None:
        """`_admit` for the common unit, with the per-record checks done on the whole unit
        at once (set operations, which cost a batch of 500 about a third of asking per
        record): every record is admitted when no trace id is unreadable, none appears
        twice, none is in flight and the dedup window knows none. None when some record
        needs its own look (the caller then admits record by record)."""
        picked = [span.messages[p] for span in unit for p in span.positions]
        reader = self._state.trace_ids
        if reader is None:
            trace_ids: list[str | None] = [None] * len(picked)
        else:
            read = reader.read
            try:
                trace_ids = [read(message.value, message.headers) for message in picked]
            except UnreadableTraceIdError:
                return None
            with_none = set(trace_ids)
            with_none.discard(None)
            ids = cast("set[str]", with_none)
            if len(ids) != len(trace_ids) - trace_ids.count(None):
                return None
            in_flight, dedup = self._in_flight_ids, self._state.dedup
            if in_flight is not None and not in_flight.keys().isdisjoint(ids):
                return None
            if dedup is not None and dedup.knows_any(ids):
                return None
            if in_flight is not None:
                in_flight.update(dict.fromkeys(ids))
        slots = [(span.tracker, span.first_seq + p) for span in unit for p in span.positions]
        return slots, list(map(record_of, picked)), trace_ids, True

    def _call_some(self, records: list[Record], tally: _Tally) -> Call:
        async def call(positions: Sequence[int]) -> Attempt | None:
            return await self._call([records[p] for p in positions], positions, tally)

        return call

    async def _call(
        self, records: Sequence[Record], positions: Sequence[int] | None, tally: _Tally
    ) -> Attempt | None:
        """One call of the handler on `records` (at `positions` of the unit, None: all);
        None when every record was handled, else how they failed (module docstring, 2)."""
        batches = self._handler.batches
        argument: Any = records if batches else records[0]
        tally.calls += 1
        started = time.perf_counter()
        try:
            result = await self._invoke(argument)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            return _attempt(exc, records[0])
        finally:
            tally.seconds += time.perf_counter() - started
        if batches and result is not None:
            return _failures_in(result, records, positions or range(len(records)))
        return None

    def _on_loop(self, argument: Any) -> Awaitable[object]:
        """The handler's call on the event loop, through its breaker (a plain function
        returning the breaker's coroutine: no frame of its own while awaited)."""
        return self._state.breaker.call_async(self._handler.on_loop, argument)

    async def _in_thread(self, argument: Any) -> object:
        """A synchronous handler's call in a worker thread, through its breaker; the
        thread cannot be interrupted, so a cancellation waits for the call in hand."""
        await anyio.lowlevel.checkpoint_if_cancelled()  # the shield would hide it
        with anyio.CancelScope(shield=True):
            result = await anyio.to_thread.run_sync(
                self._state.breaker.call,
                self._handler.in_worker_thread,
                argument,
                limiter=self._threads,
            )
        return result  # noqa: RET504 (returned after the scope: mypy reads it as able to swallow)

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
        self,
        outcome: Outcome,
        tracker: PartitionOffsets,
        seq: int,
        trace_id: str | None,
        record: Record | None,
    ) -> None:
        """The one place outcomes are booked (module docstring, 4): the record `seq` of
        `tracker`, with its `trace_id`, ended as `outcome` (per record: the per-record path
        books each record as it ends, with nothing to allocate). `record` is needed only
        while retry tiers keep key order (None otherwise): a tier record that ends lets its
        key go."""
        keys = self._keys_in_retry
        if keys is not None and record is not None and outcome is not Outcome.RETRY_SCHEDULED:
            keys.ended(record)
        if outcome is Outcome.HANDLED:  # the poison window counts them with the run's tally
            dedup = self._state.dedup
            if trace_id is not None and dedup is not None:
                dedup.remember(trace_id)
            self._stats.handled += 1
            tracker.finish(seq)
            return
        tracker.finish(seq)
        if outcome is Outcome.DEDUPLICATED:
            self._stats.deduplicated += 1
            return
        if outcome is Outcome.RETRY_SCHEDULED:
            return
        poison = self._state.poison
        poison.observe_dead_lettered()
        if poison.storming():
            raise MustExitError(
                PermanentError(poison.describe(), context={"group_id": self._group})
            )

    def _book_handled(
        self, slots: Sequence[Slot], trace_ids: Sequence[str | None], records: Sequence[Record]
    ) -> None:
        """`_book(Outcome.HANDLED, ...)` for each record of a unit, with the per-record
        work hoisted out of the loop (a batch's records are booked together)."""
        if self._keys_in_retry is not None:
            for (tracker, seq), trace_id, record in zip(slots, trace_ids, records, strict=True):
                self._book(Outcome.HANDLED, tracker, seq, trace_id, record)
            return
        dedup = self._state.dedup
        if dedup is not None:
            dedup.remember_all(trace_ids)
        self._stats.handled += len(slots)
        for tracker, of_tracker in groupby(slots, key=itemgetter(0)):  # a batch: one tracker
            tracker.finish_all(map(itemgetter(1), of_tracker))

    def _book_duplicates(self, duplicates: Sequence[tuple[PartitionOffsets, int, Any]]) -> None:
        """Book `duplicates` (tracker, sequence number, message: a unit's, left out of it)."""
        for tracker, seq, message in duplicates:
            self._book(Outcome.DEDUPLICATED, tracker, seq, None, self._keyed(message))

    def _keyed(self, message: Any) -> Record | None:
        """`message`'s Record when `_book` needs it (retry tiers keep key order), else None."""
        return record_of(message) if self._keys_in_retry is not None else None

    async def _held_back(self, message: Any, tracker: PartitionOffsets, seq: int) -> bool:
        """With key order kept behind retry tiers: True when `message` was sent to its key's
        tier instead of being handled (acknowledged), and booked so."""
        if not await self._failures.held_back(record_of(message)):
            return False
        self._book(Outcome.RETRY_SCHEDULED, tracker, seq, None, None)
        return True

    def _unreadable(self, message: Any, error: UnreadableTraceIdError) -> None:
        """A fetched record whose trace id cannot be read: counted, and no dedup for it."""
        self._stats.dedup_undecodable += 1
        _log.debug(
            "no dedup for %s[%d]@%d: %s", message.topic, message.partition, message.offset, error
        )


def _attempt(exc: Exception | SystemExit | KeyboardInterrupt, first: Record) -> Attempt:
    """How a handler call failed that raised `exc` (`first`: its unit's first record)."""
    if isinstance(exc, Exception):
        return Attempt(whole=exc)
    error = PermanentError(
        f"the handler raised {type(exc).__name__}({exc}) on {where(first)}: "
        "a handler may not end the process; the record is failed permanently"
    )
    error.__cause__ = exc
    return Attempt(whole=error)


def _single(span: Span, position: int) -> Span:
    """The record at `position` of `span`'s fetch, as a span of its own."""
    return Span(span.messages, span.tracker, span.first_seq, (position,), span.lane)


@dataclass(slots=True)
class _Tally:
    """What a run did that is added up once per run (see `_add_up`)."""

    calls: int = 0
    seconds: float = 0.0
    handled: int = 0


def _failures_in(
    result: object, records: Sequence[Record], positions: Sequence[int]
) -> Attempt | None:
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
