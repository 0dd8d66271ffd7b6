"""The dispatcher with one record in flight does what handling records one at a time does.

No broker here: the records are aiokafka ConsumerRecords built in the test, everything
else is the consumer's real machinery (state, breaker, retry budget, failure path,
hand-over, lanes, offset tracker: tests/actors/dispatch_testing.py). A reference model
handles the same records one at a time, as the consumer's rules say; the dispatcher
must call the handler on the same records, finish the same ones (so commit the same
offset), count the same and end the same way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import pytest
from aiokafka.structs import ConsumerRecord
from dispatch_testing import MAX_ATTEMPTS, message, offline_settings, rig, settle
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.consumer.offsets import PartitionOffsets
from actors.consumer.pauses import PauseReasons
from actors.consumer.state import ConsumerState
from actors.messages import Record
from core.errors import AuthError, CircuitOpenError, PermanentError, TransientError
from core.logging import get_log_context

pytestmark = pytest.mark.anyio

Attempt = Literal["ok", "transient", "permanent", "auth", "open"]
Mode = Literal["async", "thread", "sync on loop"]
ERRORS: dict[Attempt, type[Exception]] = {
    "transient": TransientError,
    "permanent": PermanentError,
    "auth": AuthError,
}


@dataclass
class Script:
    """What the handler does on each attempt at each record, and what it saw."""

    attempts: dict[int, list[Attempt]]
    calls: list[int] = field(default_factory=list)

    def __call__(self, record: Record) -> None:
        self.calls.append(record.offset)
        planned = self.attempts.get(record.offset, [])
        outcome = planned.pop(0) if planned else "ok"
        if outcome == "open":
            raise CircuitOpenError("inner", 5.0)
        if outcome != "ok":
            raise ERRORS[outcome](f"{outcome} at {record.offset}")


def handler_for(script: Script, mode: Mode) -> Any:
    """The script as an async handler, or as a plain function."""
    if mode != "async":
        return script

    async def handle(record: Record) -> None:
        script(record)

    return handle


@dataclass
class Expected:
    """What handling the records one at a time leads to."""

    calls: list[int]
    finished: int
    end: type[Exception] | str
    handled: int
    deduplicated: int
    failed: int
    retried: int


def one_at_a_time(
    offsets: list[int], trace_ids: list[str | None], plans: dict[int, list[Attempt]], stop_at: int
) -> Expected:
    """The reference: each record in turn through dedup, the handler and the failure rules."""
    seen: set[str] = set()
    expected = Expected([], 0, "done", 0, 0, 0, 0)
    for index, (offset, trace_id) in enumerate(zip(offsets, trace_ids, strict=True)):
        if index == stop_at:
            expected.end = "interrupted"
            return expected
        if trace_id is not None and trace_id in seen:
            expected.deduplicated += 1
            expected.finished += 1
            continue
        planned = list(plans.get(offset, []))
        for attempt in range(MAX_ATTEMPTS):
            expected.calls.append(offset)
            outcome = planned.pop(0) if planned else "ok"
            if attempt:
                expected.retried += 1
            if outcome == "ok":
                break
            if outcome != "open":
                expected.failed += 1
            if outcome == "open":
                expected.end = "refused"
                return expected
            if outcome != "transient" or attempt == MAX_ATTEMPTS - 1:
                expected.end = TransientError if outcome == "transient" else ERRORS[outcome]
                return expected
        expected.handled += 1
        expected.finished += 1
        if trace_id is not None:
            seen.add(trace_id)
    return expected


class StopBefore(PauseReasons):
    """Pause reasons that also hold while the tracker's first unfinished record is the one
    to stop before: the dispatcher's stop check sees a stop exactly there."""

    def __init__(self, tracker: PartitionOffsets, offset: int | None) -> None:
        self._tracker, self._offset, self._held = tracker, offset, False
        super().__init__()

    @property  # type: ignore[override]
    def paused(self) -> bool:
        """Held by a reason, or the stop point reached."""
        return self._held or self.stopped

    @paused.setter
    def paused(self, value: bool) -> None:
        self._held = value

    @property
    def stopped(self) -> bool:
        """The records before the stop point are finished."""
        return self._offset is not None and self._tracker.next_unfinished() == self._offset


async def hand_over(
    mode: Mode, script: Script, messages: list[ConsumerRecord[bytes, bytes]], stop_at: int
) -> tuple[str | type[BaseException], PartitionOffsets, ConsumerState]:
    """Dispatch `messages` with the real machinery, one in flight; a stop comes before
    the record at `stop_at`."""
    config = offline_settings(sync_handler_in_thread=mode == "thread")
    tracker = PartitionOffsets()
    stop_offset = messages[stop_at].offset if stop_at < len(messages) else None
    stop = StopBefore(tracker, stop_offset)
    rigged = rig(handler_for(script, mode), config, pauses=stop)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        rigged.dispatcher.add(tracker, messages)
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    failure = rigged.dispatcher.failure
    if failure is not None:
        return type(failure), tracker, rigged.state
    end = "refused" if "inner" in stop.reasons else "interrupted" if stop.stopped else "done"
    return end, tracker, rigged.state


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[int], list[str | None], dict[int, list[Attempt]], int]:
    """Offsets with gaps, trace ids that repeat, per-attempt outcomes, an interruption."""
    gaps = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=25))
    offsets = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    trace_ids = draw(
        st.lists(
            st.none() | st.sampled_from(["a", "b", "c", "d", "e", "f"]),
            min_size=len(offsets),
            max_size=len(offsets),
        )
    )
    attempt = st.sampled_from(["ok", "transient", "transient", "permanent", "auth", "open"])
    failing = draw(st.sets(st.sampled_from(offsets), max_size=4))
    plans = {
        offset: draw(st.lists(attempt, min_size=1, max_size=MAX_ATTEMPTS)) for offset in failing
    }
    stop_at = draw(st.integers(min_value=0, max_value=len(offsets) + 3))
    return offsets, trace_ids, plans, stop_at


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.sampled_from(["async", "thread", "sync on loop"]))
def test_the_hand_over_matches_handling_one_record_at_a_time(
    scenario: tuple[list[int], list[str | None], dict[int, list[Attempt]], int], mode: Mode
) -> None:
    """For any records, failures and interruption point, the dispatcher with one record
    in flight calls the handler on the same records, finishes (so commits) the same
    ones, counts the same and ends the same way as handling the records one at a time."""
    offsets, trace_ids, plans, stop_at = scenario
    expected = one_at_a_time(offsets, trace_ids, plans, stop_at)
    script = Script({offset: list(planned) for offset, planned in plans.items()})
    messages = [message(o, t) for o, t in zip(offsets, trace_ids, strict=True)]
    end, tracker, state = anyio.run(hand_over, mode, script, messages, stop_at)

    assert script.calls == expected.calls
    finished = expected.finished
    unfinished = offsets[finished] if finished < len(offsets) else None
    assert tracker.next_unfinished() == unfinished
    last_plus_one = offsets[-1] + 1
    assert tracker.watermark() == (
        None if not finished else last_plus_one if unfinished is None else unfinished
    )
    stats = state.stats
    assert (stats.handled, stats.deduplicated, stats.failed, stats.retried) == (
        expected.handled,
        expected.deduplicated,
        expected.failed,
        expected.retried,
    )
    assert stats.handler_seconds_count == len(expected.calls)
    assert state.poison.sample == min(expected.handled, state.poison.window)
    assert end == expected.end


async def test_sync_handlers_run_on_a_bounded_pool_with_each_records_context() -> None:
    """A plain function handler is called off the event loop, on at most `max_in_flight`
    worker threads, and each call sees its own record's log context."""
    seen: list[tuple[int, object, int]] = []

    def handler(record: Record) -> None:
        time.sleep(0.002)
        seen.append((threading.get_ident(), get_log_context().get("offset"), record.offset))

    rigged = rig(handler, offline_settings(max_in_flight=3, ordering="none"))
    tracker = PartitionOffsets()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        rigged.dispatcher.add(tracker, [message(offset) for offset in range(30)])
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    threads = {thread for thread, _, _ in seen}
    assert 1 <= len(threads) <= 3
    assert threading.get_ident() not in threads
    assert sorted(offset for _, offset, _ in seen) == list(range(30))
    assert all(context == offset for _, context, offset in seen)
    assert tracker.watermark() == 30
