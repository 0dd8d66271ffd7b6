"""The fast hand-over of a partition's records does what handling them one at a time does.

No broker here: the records are aiokafka ConsumerRecords built in the test, everything
else is the consumer's real machinery (state, breaker, retry budget, failure path,
offset tracker). A reference model handles the same records one at a time, as the
consumer's rules say; the hand-over must call the handler on the same records, finish
the same ones (so commit the same offset), count the same and end the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.consumer.failures import FailurePath
from actors.consumer.handler_calls import HandlerRunner
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.records import RecordHandover, RunEnd
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record
from core.errors import AuthError, CircuitOpenError, PermanentError, TransientError
from core.logging import get_log_context
from core.resilience.backoff import RetryConfig
from core.resilience.circuit_breaker import CircuitBreakerConfig

pytestmark = pytest.mark.anyio

Attempt = Literal["ok", "transient", "permanent", "auth", "open"]
Mode = Literal["async", "thread", "sync on loop"]
MAX_ATTEMPTS = 3
ERRORS: dict[Attempt, type[Exception]] = {
    "transient": TransientError,
    "permanent": PermanentError,
    "auth": AuthError,
}


def consumer_settings(**overrides: Any) -> ConsumerSettings:
    """Immediate retries, a breaker that never opens, dead-lettering off (no broker)."""
    values: dict[str, Any] = {
        "bootstrap_servers": "127.0.0.1:9",
        "topics": ("orders",),
        "group_id": "records-test",
        "dead_letter_topic": None,
        "retry": RetryConfig(max_attempts=MAX_ATTEMPTS, base_delay=0.0, max_delay=0.0),
        "breaker": CircuitBreakerConfig(failure_threshold=1_000_000),
    }
    return ConsumerSettings(**(values | overrides))


def message(offset: int, trace_id: str | None) -> ConsumerRecord[bytes, bytes]:
    """A fetched record as aiokafka hands it over."""
    headers = (("trace_id", trace_id.encode()),) if trace_id is not None else ()
    return ConsumerRecord("orders", 0, offset, 0, 0, None, b"v", None, 0, 1, headers)


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


async def hand_over(
    mode: Mode, script: Script, messages: list[ConsumerRecord[bytes, bytes]], stop_at: int
) -> tuple[RunEnd | type[Exception], PartitionOffsets, ConsumerState]:
    """Hand `messages` over with the real machinery; stop before the record at `stop_at`."""
    config = consumer_settings(sync_handler_in_thread=mode == "thread")
    state = ConsumerState.for_settings(config)
    runner = HandlerRunner(handler_for(script, mode), in_thread=config.sync_handler_in_thread)
    failures = FailurePath(config, state, runner, None, None)
    tracker = PartitionOffsets()
    tracker.track([m.offset for m in messages])
    stop_offset = messages[stop_at].offset if stop_at < len(messages) else None

    def interrupted(asked: PartitionOffsets) -> bool:
        return asked.next_unfinished() == stop_offset

    handover = RecordHandover(config, state, runner, failures, interrupted)
    try:
        end: RunEnd | type[Exception] = await handover.hand_over(tracker, messages)
    except (TransientError, PermanentError, AuthError) as exc:
        end = type(exc)
    return end, tracker, state


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
    """For any records, failures and interruption point, the hand-over calls the handler
    on the same records, finishes (so commits) the same ones, counts the same and ends
    the same way as handling the records one at a time."""
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
    if isinstance(expected.end, str):
        assert isinstance(end, RunEnd)
        assert end.index == finished
        assert (end.refusal is not None) is (expected.end == "refused")
    else:
        assert end is expected.end


async def test_a_sync_handler_runs_a_whole_run_in_one_worker_thread() -> None:
    """A plain function handler is called off the event loop, in one thread for the
    whole run, and sees each record's log context."""
    seen: list[tuple[int, object]] = []

    def handler(record: Record) -> None:
        seen.append((threading.get_ident(), get_log_context().get("offset")))

    config = consumer_settings()
    state = ConsumerState.for_settings(config)
    runner = HandlerRunner(handler, in_thread=True)
    handover = RecordHandover(
        config, state, runner, FailurePath(config, state, runner, None, None), lambda _: False
    )
    tracker = PartitionOffsets()
    messages = [message(offset, None) for offset in range(5)]
    tracker.track(range(5))
    assert await handover.hand_over(tracker, messages) == RunEnd(5)
    threads = {thread for thread, _ in seen}
    assert len(threads) == 1
    assert threading.get_ident() not in threads
    assert [offset for _, offset in seen] == list(range(5))
