"""Handing one partition's fetched records to the handler, in order, on a fast path.

The common case is a record whose handler call succeeds at once, with the breaker
closed. For it, the consumer does only what each record needs, in one tight loop over
the partition's share of a fetched batch:

- ask the caller whether to stop before this record (stop, pause, rebalance);
- build the `Record` and read its trace id; a recently handled id skips the record;
- call the handler inside the record's KafkaLogContext, through the handler's circuit
  breaker (`call_async`, or `call` in a worker thread), and time the call;
- on success: remember the trace id, count the record handled and mark it finished in
  the partition's offset tracker.

Counters that nobody reads per record (handler time, the poison guard's window, the
calls that fund the retry budget) are added up once per run. A call that raises leaves
the fast path: the record goes to actors.consumer.failures (retries, token refresh,
dead letter, refusal) with the error, and the fast path resumes after it.

A synchronous handler that must run in a worker thread gets the same loop, run in the
thread: one trip to the thread per run of records, not one per record. The loop asks
the caller before every record, so a stop, a pause or a rebalance waits for the call
in hand only, as on the event loop; failures are taken over back on the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from actors.consumer.dedup import UnreadableTraceIdError
from actors.consumer.failures import FailurePath, Outcome, Refusal, where
from actors.consumer.handler_calls import HandlerRunner
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record
from core.errors import PermanentError
from core.logging.kafka_context import KafkaLogContext

__all__ = ["RecordHandover", "RunEnd", "record_of"]

_log = logging.getLogger(__name__)

Interrupted = Callable[[PartitionOffsets], bool]
"""Asked before each record: True when the caller must act before it is handled."""


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


@dataclass(frozen=True, slots=True)
class RunEnd:
    """Where handing over a run of records stopped."""

    index: int
    """The first record not finished (the run's length when every record is)."""
    refusal: Refusal | None = None
    """Set when a breaker refused the record at `index`."""


@dataclass(frozen=True, slots=True)
class _Failure:
    """The fast path's first call of the record at `index` raised `error`."""

    index: int
    record: Record
    trace_id: str | None
    error: Exception


class RecordHandover:
    """Hands runs of one partition's records to the handler (see the module docstring)."""

    def __init__(
        self,
        settings: ConsumerSettings,
        state: ConsumerState,
        handler: HandlerRunner,
        failures: FailurePath,
        interrupted: Interrupted,
    ) -> None:
        self._group = settings.group_id
        self._state = state
        self._stats = state.stats
        self._handler = handler
        self._failures = failures
        self._interrupted = interrupted

    async def hand_over(
        self, tracker: PartitionOffsets, messages: Sequence[Any], start: int = 0
    ) -> RunEnd:
        """Hand `messages[start:]` over in order until all are finished or the caller must
        act; every finished record is marked in `tracker`. Raises when the consumer must
        stop (see actors.consumer.failures), and PermanentError on a poison storm."""
        index = start
        while True:
            if self._handler.in_thread:
                ended = await anyio.to_thread.run_sync(
                    self._run_in_thread, tracker, messages, index
                )
            else:
                ended = await self._run_on_loop(tracker, messages, index)
            if not isinstance(ended, _Failure):
                return RunEnd(ended)
            failure, index = ended, ended.index
            record = failure.record
            with KafkaLogContext(record.topic, record.partition, record.offset, self._group):
                outcome = await self._failures.after_failure(record, failure.error)
            if isinstance(outcome, Refusal):
                return RunEnd(index, outcome)
            self._finish_after_failure(tracker, outcome, failure.trace_id)
            index += 1

    async def _run_on_loop(
        self, tracker: PartitionOffsets, messages: Sequence[Any], start: int
    ) -> int | _Failure:
        """The fast path on the event loop; the index where it stopped, or the failure."""
        interrupted, stats, group = self._interrupted, self._stats, self._group
        dedup = self._state.dedup
        call, handler = self._state.breaker.call_async, self._handler.on_loop
        calls = handled = 0
        spent = 0.0
        try:
            for index in range(start, len(messages)):
                if interrupted(tracker):
                    return index
                record = record_of(messages[index])
                trace_id = self._trace_id(record)
                if trace_id is not None and dedup is not None and dedup.contains(trace_id):
                    stats.deduplicated += 1
                    tracker.finish_next()
                    continue
                with KafkaLogContext(record.topic, record.partition, record.offset, group):
                    calls += 1
                    started = time.perf_counter()
                    try:
                        await call(handler, record)
                    except Exception as exc:
                        return _Failure(index, record, trace_id, exc)
                    finally:
                        spent += time.perf_counter() - started
                if trace_id is not None and dedup is not None:
                    dedup.remember(trace_id)
                handled += 1
                stats.handled += 1
                tracker.finish_next()
            return len(messages)
        finally:
            self._add_up(calls, spent, handled)

    def _run_in_thread(
        self, tracker: PartitionOffsets, messages: Sequence[Any], start: int
    ) -> int | _Failure:
        """`_run_on_loop` for a synchronous handler, run in a worker thread: the same steps
        but for the plain call (keep the two in step; the hand-over's properties test both)."""
        interrupted, stats, group = self._interrupted, self._stats, self._group
        dedup = self._state.dedup
        call, handler = self._state.breaker.call, self._handler.in_worker_thread
        calls = handled = 0
        spent = 0.0
        try:
            for index in range(start, len(messages)):
                if interrupted(tracker):
                    return index
                record = record_of(messages[index])
                trace_id = self._trace_id(record)
                if trace_id is not None and dedup is not None and dedup.contains(trace_id):
                    stats.deduplicated += 1
                    tracker.finish_next()
                    continue
                with KafkaLogContext(record.topic, record.partition, record.offset, group):
                    calls += 1
                    started = time.perf_counter()
                    try:
                        call(handler, record)
                    except Exception as exc:
                        return _Failure(index, record, trace_id, exc)
                    finally:
                        spent += time.perf_counter() - started
                if trace_id is not None and dedup is not None:
                    dedup.remember(trace_id)
                handled += 1
                stats.handled += 1
                tracker.finish_next()
            return len(messages)
        finally:
            self._add_up(calls, spent, handled)

    def _add_up(self, calls: int, spent: float, handled: int) -> None:
        """Add a run's handler calls to the stats, and its handled records to the poison
        window and the retry budget (a run's end comes before its failure is taken over)."""
        self._stats.observe_handler(calls, spent)
        self._state.poison.observe_handled(handled)
        self._state.retry_budget.record_calls(handled)

    def _finish_after_failure(
        self, tracker: PartitionOffsets, outcome: Outcome, trace_id: str | None
    ) -> None:
        """Book a record the failure path handled or dead-lettered; raise on a poison storm."""
        poison = self._state.poison
        if outcome is Outcome.HANDLED:
            if trace_id is not None and self._state.dedup is not None:
                self._state.dedup.remember(trace_id)
            self._stats.handled += 1
            poison.observe_handled()
            tracker.finish_next()
            return
        poison.observe_dead_lettered()
        tracker.finish_next()
        if poison.storming():
            raise PermanentError(poison.describe(), context={"group_id": self._group})

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
