"""Unit tests of CircuitBreaker: every transition, option and counter."""

from __future__ import annotations

import dataclasses
import logging
import math
import traceback
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from clocks import ManualClock
from resilience_fakes import Cancelled, PendingCall, TransitionLog, failing

from core.errors import (
    AuthError,
    CircuitOpenError,
    PermanentError,
    TransientError,
)
from core.resilience import (
    DEFAULT_CIRCUIT_CONFIG,
    KAFKA_CIRCUIT_CONFIG,
    KUSTO_CIRCUIT_CONFIG,
    ONELAKE_CIRCUIT_CONFIG,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

transient = failing(lambda: TransientError("dependency down"))
unknown = failing(lambda: RuntimeError("no idea"))


def make_breaker(clock: ManualClock, **config: Any) -> CircuitBreaker:
    """A breaker named 'dep' on the fake clock with the given config fields."""
    return CircuitBreaker("dep", CircuitBreakerConfig(**config), clock=clock)


def fail_times(
    breaker: CircuitBreaker,
    times: int,
    fn: Callable[[], Any] = transient,
    expected: type[BaseException] = Exception,
) -> None:
    """Make `times` calls through `breaker` that raise `expected`."""
    for _ in range(times):
        with pytest.raises(expected):
            breaker.call(fn)


def opened(clock: ManualClock, **config: Any) -> CircuitBreaker:
    """A breaker that has just opened after its threshold of failures."""
    breaker = make_breaker(clock, **config)
    fail_times(breaker, breaker.config.failure_threshold)
    assert breaker.state is OPEN
    return breaker


def half_open(clock: ManualClock, **config: Any) -> CircuitBreaker:
    """A breaker opened and then left alone for its recovery timeout."""
    breaker = opened(clock, **config)
    clock.advance(breaker.config.recovery_timeout_s)
    assert breaker.state is HALF_OPEN
    return breaker


# -- configuration -------------------------------------------------------------


def test_default_config_is_the_documented_one() -> None:
    """A breaker built without a config opens after 5 failures, probes after 30 s with 1 trial."""
    breaker = CircuitBreaker("dep")
    assert breaker.config == DEFAULT_CIRCUIT_CONFIG == CircuitBreakerConfig()
    assert dataclasses.astuple(breaker.config) == (5, 30.0, 1, 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_threshold", 0),
        ("half_open_max_calls", 0),
        ("success_threshold", -1),
        ("recovery_timeout_s", 0.0),
        ("recovery_timeout_s", -5.0),
        ("recovery_timeout_s", math.nan),
        ("recovery_timeout_s", math.inf),
    ],
)
def test_invalid_config_is_rejected_naming_the_field(field: str, value: float) -> None:
    """A threshold below 1 or a timeout that is not finite and positive raises ValueError
    naming the field (an infinite one would keep an open breaker open for ever)."""
    with pytest.raises(ValueError, match=field):
        CircuitBreakerConfig(**{field: value})


def test_config_is_immutable() -> None:
    """A config cannot be changed after creation, so presets cannot be altered by accident."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        KAFKA_CIRCUIT_CONFIG.failure_threshold = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "preset", [KAFKA_CIRCUIT_CONFIG, ONELAKE_CIRCUIT_CONFIG, KUSTO_CIRCUIT_CONFIG]
)
def test_preset_opens_at_its_threshold_and_probes_after_its_timeout(
    preset: CircuitBreakerConfig, clock: ManualClock
) -> None:
    """Each preset opens after exactly its failure threshold and half-opens after its timeout."""
    breaker = CircuitBreaker("dep", preset, clock=clock)
    fail_times(breaker, preset.failure_threshold - 1)
    assert breaker.state is CLOSED
    fail_times(breaker, 1)
    assert breaker.state is OPEN
    assert breaker.retry_after() == preset.recovery_timeout_s
    clock.advance(preset.recovery_timeout_s)
    assert breaker.state is HALF_OPEN


# -- closed --------------------------------------------------------------------


def test_closed_call_passes_arguments_and_returns_the_result(clock: ManualClock) -> None:
    """A closed breaker runs the function with the given arguments and returns its value."""
    breaker = make_breaker(clock)
    assert breaker.call(lambda a, *, b: (a, b), 1, b=2) == (1, 2)
    assert breaker.stats.successes == 1


def test_failure_propagates_unchanged(clock: ManualClock) -> None:
    """The exception the function raised is the one the caller receives."""
    breaker = make_breaker(clock)
    error = TransientError("down")
    with pytest.raises(TransientError) as raised:
        breaker.call(failing(lambda: error))
    assert raised.value is error


def test_stays_closed_below_the_threshold(clock: ManualClock) -> None:
    """Fewer consecutive failures than the threshold keep the circuit closed."""
    breaker = make_breaker(clock, failure_threshold=3)
    fail_times(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.stats.consecutive_failures == 2


def test_opens_at_the_threshold_of_consecutive_failures(clock: ManualClock) -> None:
    """The failure that reaches the threshold opens the circuit and records when."""
    breaker = make_breaker(clock, failure_threshold=3)
    fail_times(breaker, 3)
    stats = breaker.stats
    assert stats.state is OPEN
    assert stats.opened_at == clock.now
    assert stats.last_failure_time == clock.now
    assert stats.failures == 3


def test_unknown_errors_count_like_transient_ones(clock: ManualClock) -> None:
    """An unclassified error is held against the dependency, as TRANSIENT is."""
    breaker = make_breaker(clock, failure_threshold=2)
    fail_times(breaker, 2, unknown)
    assert breaker.state is OPEN


def test_a_success_resets_the_failure_streak(clock: ManualClock) -> None:
    """Failures separated by a success do not add up to the threshold."""
    breaker = make_breaker(clock, failure_threshold=3)
    fail_times(breaker, 2)
    breaker.call(lambda: None)
    fail_times(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.stats.consecutive_failures == 2


@pytest.mark.parametrize(
    "make_error",
    [
        lambda: PermanentError("bad input"),
        lambda: ValueError("bad input"),
        lambda: AuthError("token rejected"),
        lambda: CircuitOpenError("downstream", 5.0),
    ],
    ids=["PermanentError", "ValueError", "AuthError", "CircuitOpenError"],
)
def test_errors_that_say_nothing_about_health_are_not_counted(
    make_error: Callable[[], Exception], clock: ManualClock
) -> None:
    """PERMANENT, AUTH and CIRCUIT_OPEN errors pass through without opening the circuit."""
    breaker = make_breaker(clock, failure_threshold=1)
    fail_times(breaker, 5, failing(make_error))
    stats = breaker.stats
    assert stats.state is CLOSED
    assert (stats.failures, stats.ignored_failures) == (0, 5)


def test_ignored_errors_do_not_break_a_failure_streak(clock: ManualClock) -> None:
    """A permanent error between transient ones is neither a success nor a failure."""
    breaker = make_breaker(clock, failure_threshold=2)
    fail_times(breaker, 1)
    fail_times(breaker, 1, failing(lambda: PermanentError("bad input")))
    fail_times(breaker, 1)
    assert breaker.state is OPEN


def test_consecutive_successes_count_since_the_last_failure(clock: ManualClock) -> None:
    """The success streak restarts at each counted failure."""
    breaker = make_breaker(clock, failure_threshold=5)
    for _ in range(3):
        breaker.call(lambda: None)
    fail_times(breaker, 1)
    breaker.call(lambda: None)
    stats = breaker.stats
    assert (stats.successes, stats.consecutive_successes) == (4, 1)


# -- open ------------------------------------------------------------------------


def test_open_rejects_without_calling_and_says_when_to_retry(clock: ManualClock) -> None:
    """An open circuit raises CircuitOpenError with the time left, and never runs the call."""
    breaker = opened(clock, failure_threshold=1, recovery_timeout_s=30.0)
    clock.advance(10.0)
    calls: list[None] = []
    with pytest.raises(CircuitOpenError) as raised:
        breaker.call(calls.append, None)
    assert calls == []
    assert raised.value.breaker_name == "dep"
    assert raised.value.retry_after == pytest.approx(20.0)
    assert breaker.stats.rejections == 1


def test_retry_after_counts_down_and_is_zero_unless_open(clock: ManualClock) -> None:
    """retry_after() is the time left while open, and 0 when closed or due."""
    breaker = make_breaker(clock, failure_threshold=1, recovery_timeout_s=30.0)
    assert breaker.retry_after() == 0.0
    fail_times(breaker, 1)
    clock.advance(12.5)
    assert breaker.retry_after() == pytest.approx(17.5)
    clock.advance(17.5)
    assert breaker.retry_after() == 0.0


def test_reading_state_after_the_timeout_half_opens(clock: ManualClock) -> None:
    """OPEN becomes HALF_OPEN when someone looks after the recovery timeout, with an event."""
    breaker = opened(clock, failure_threshold=1, recovery_timeout_s=5.0)
    log = TransitionLog()
    breaker.add_listener(log)
    clock.advance(4.999)
    assert breaker.state is OPEN
    clock.advance(0.001)
    assert breaker.state is HALF_OPEN
    assert log.transitions == [(OPEN, HALF_OPEN)]


def test_a_call_after_the_timeout_is_admitted_as_a_trial(clock: ManualClock) -> None:
    """Without anyone reading the state, the first call after the timeout is the trial."""
    breaker = opened(clock, failure_threshold=1, recovery_timeout_s=5.0)
    clock.advance(5.0)
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state is CLOSED


# -- half-open ---------------------------------------------------------------------


def test_trial_success_closes(clock: ManualClock) -> None:
    """One success closes a half-open circuit with the default success threshold."""
    breaker = half_open(clock, failure_threshold=1)
    breaker.call(lambda: None)
    stats = breaker.stats
    assert stats.state is CLOSED
    assert stats.consecutive_failures == 0


def test_success_threshold_needs_that_many_trial_successes(clock: ManualClock) -> None:
    """With success_threshold=3 the circuit stays half-open until the third success."""
    breaker = half_open(clock, failure_threshold=1, success_threshold=3)
    for _ in range(2):
        breaker.call(lambda: None)
        assert breaker.state is HALF_OPEN
    breaker.call(lambda: None)
    assert breaker.state is CLOSED


def test_trial_failure_reopens_for_a_fresh_timeout(clock: ManualClock) -> None:
    """A counted failure while half-open reopens, timed from the reopening."""
    breaker = half_open(clock, failure_threshold=1, recovery_timeout_s=5.0)
    clock.advance(1.0)
    fail_times(breaker, 1)
    assert breaker.state is OPEN
    assert breaker.stats.opened_at == clock.now
    assert breaker.retry_after() == 5.0


def test_half_open_admits_at_most_max_calls_at_once(clock: ManualClock) -> None:
    """Trial calls beyond half_open_max_calls are rejected while the trials run."""
    breaker = half_open(clock, failure_threshold=1, half_open_max_calls=2, success_threshold=2)
    trials = [PendingCall(breaker), PendingCall(breaker)]
    with pytest.raises(CircuitOpenError) as raised:
        PendingCall(breaker)
    assert raised.value.retry_after == breaker.config.recovery_timeout_s
    assert [trial.succeed() for trial in trials] == ["done", "done"]
    assert breaker.state is CLOSED


def test_a_finished_trial_frees_its_slot(clock: ManualClock) -> None:
    """After a trial succeeds without closing, the next call is admitted as a trial."""
    breaker = half_open(clock, failure_threshold=1, success_threshold=2)
    first = PendingCall(breaker)
    first.succeed()
    second = PendingCall(breaker)
    assert breaker.state is HALF_OPEN
    second.succeed()
    assert breaker.state is CLOSED


def test_trial_ending_in_an_ignored_error_frees_the_slot_without_verdict(
    clock: ManualClock,
) -> None:
    """A permanent error during a trial leaves the circuit half-open with its slot free."""
    breaker = half_open(clock, failure_threshold=1)
    error = PermanentError("bad input")
    assert PendingCall(breaker).fail(error) is error
    assert breaker.state is HALF_OPEN
    PendingCall(breaker).succeed()
    assert breaker.state is CLOSED


def test_cancelled_trial_frees_the_slot_without_counting(clock: ManualClock) -> None:
    """A trial cancelled mid-call is no outcome: the slot frees and nothing is counted."""
    breaker = half_open(clock, failure_threshold=1)
    before = breaker.stats
    assert isinstance(PendingCall(breaker).cancel(), Cancelled)
    after = breaker.stats
    assert after.state is HALF_OPEN
    assert (after.failures, after.successes) == (before.failures, before.successes)
    assert after.cancellations == 1
    PendingCall(breaker).succeed()
    assert breaker.state is CLOSED


def test_synchronous_call_interrupted_frees_the_trial_slot(clock: ManualClock) -> None:
    """A BaseException such as KeyboardInterrupt in a sync trial propagates and frees the slot."""
    breaker = half_open(clock, failure_threshold=1)
    fail_times(breaker, 1, failing(Cancelled), expected=Cancelled)
    assert breaker.stats.cancellations == 1
    breaker.call(lambda: None)
    assert breaker.state is CLOSED


def test_a_call_admitted_while_closed_cannot_decide_a_later_half_open(clock: ManualClock) -> None:
    """A slow call from before the opening neither closes, reopens nor frees a trial slot."""
    breaker = make_breaker(clock, failure_threshold=1, recovery_timeout_s=5.0)
    slow_success, slow_failure = PendingCall(breaker), PendingCall(breaker)
    fail_times(breaker, 1)
    clock.advance(5.0)
    trial = PendingCall(breaker)
    slow_success.succeed()
    slow_failure.fail(TransientError("late"))
    assert breaker.state is HALF_OPEN
    with pytest.raises(CircuitOpenError):
        PendingCall(breaker)
    trial.succeed()
    stats = breaker.stats
    assert stats.state is CLOSED
    assert (stats.successes, stats.failures) == (2, 2)


# -- listeners -------------------------------------------------------------------


def test_listeners_see_every_transition_in_order(clock: ManualClock) -> None:
    """A full cycle is reported as CLOSED->OPEN->HALF_OPEN->OPEN->HALF_OPEN->CLOSED."""
    breaker = make_breaker(clock, failure_threshold=1, recovery_timeout_s=1.0)
    log = TransitionLog()
    breaker.add_listener(log)
    fail_times(breaker, 1)
    clock.advance(1.0)
    fail_times(breaker, 1)
    clock.advance(1.0)
    breaker.call(lambda: None)
    assert log.transitions == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]
    assert {name for name, _, _ in log.events} == {"dep"}
    assert breaker.stats.state_changes == len(log.events)


def test_a_failing_listener_is_logged_and_does_not_stop_the_others(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged; later listeners and the call itself are unaffected."""
    breaker = make_breaker(clock, failure_threshold=1)

    def broken(name: str, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("listener bug")

    log = TransitionLog()
    breaker.add_listener(broken)
    breaker.add_listener(log)
    with caplog.at_level(logging.ERROR), pytest.raises(TransientError):
        breaker.call(transient)
    assert log.transitions == [(CLOSED, OPEN)]
    assert "listener bug" in caplog.text
    assert breaker.state is OPEN


def test_removed_listener_is_not_called(clock: ManualClock) -> None:
    """After remove_listener the listener hears of no further transition."""
    breaker = make_breaker(clock, failure_threshold=1)
    log = TransitionLog()
    breaker.add_listener(log)
    breaker.remove_listener(log)
    fail_times(breaker, 1)
    assert log.events == []


def test_removing_an_unknown_listener_raises(clock: ManualClock) -> None:
    """Removing a listener that was never added is a ValueError, like list.remove."""
    with pytest.raises(ValueError):
        make_breaker(clock).remove_listener(TransitionLog())


def test_a_listener_may_use_the_breaker_and_events_stay_in_order(clock: ManualClock) -> None:
    """A listener that resets the breaker does not deadlock, and its event comes after."""
    breaker = make_breaker(clock, failure_threshold=1)
    log = TransitionLog()

    def reset_when_opened(name: str, old: CircuitState, new: CircuitState) -> None:
        if new is OPEN:
            assert breaker.stats.state is OPEN
            breaker.reset()

    breaker.add_listener(reset_when_opened)
    breaker.add_listener(log)
    fail_times(breaker, 1)
    assert log.transitions == [(CLOSED, OPEN), (OPEN, CLOSED)]
    assert breaker.state is CLOSED


# -- reset, record_success, record_failure ---------------------------------------------


def test_reset_closes_an_open_circuit_and_keeps_the_totals(clock: ManualClock) -> None:
    """reset() forces CLOSED with an event and clears the streaks; lifetime totals remain."""
    breaker = opened(clock, failure_threshold=2)
    log = TransitionLog()
    breaker.add_listener(log)
    breaker.reset()
    stats = breaker.stats
    assert stats.state is CLOSED
    assert log.transitions == [(OPEN, CLOSED)]
    assert (stats.failures, stats.consecutive_failures) == (2, 0)
    breaker.call(lambda: None)


def test_reset_while_closed_clears_the_streak_silently(clock: ManualClock) -> None:
    """reset() on a closed circuit forgets its failures without a transition event."""
    breaker = make_breaker(clock, failure_threshold=2)
    log = TransitionLog()
    breaker.add_listener(log)
    fail_times(breaker, 1)
    breaker.reset()
    fail_times(breaker, 1)
    assert breaker.state is CLOSED
    assert log.events == []


def test_recorded_failures_count_like_failed_calls(clock: ManualClock) -> None:
    """record_failure classifies the error: transient ones open the circuit, permanent ones not."""
    breaker = make_breaker(clock, failure_threshold=2)
    breaker.record_failure(PermanentError("bad input"))
    breaker.record_failure(TransientError("down"))
    assert breaker.state is CLOSED
    breaker.record_failure(TransientError("down"))
    stats = breaker.stats
    assert stats.state is OPEN
    assert (stats.failures, stats.ignored_failures) == (2, 1)


def test_recorded_success_closes_a_half_open_circuit(clock: ManualClock) -> None:
    """record_success counts toward closing, as a trial call's success would."""
    breaker = half_open(clock, failure_threshold=1)
    breaker.record_success()
    assert breaker.state is CLOSED


def test_recorded_success_while_open_changes_nothing_but_the_count(clock: ManualClock) -> None:
    """A success reported while open is counted but does not close the circuit early."""
    breaker = opened(clock, failure_threshold=1)
    breaker.record_success()
    stats = breaker.stats
    assert (stats.state, stats.successes, stats.consecutive_failures) == (OPEN, 1, 1)


def test_recorded_cancellation_is_not_a_failure(clock: ManualClock) -> None:
    """record_failure with a cancellation (a BaseException) only counts a cancellation."""
    breaker = make_breaker(clock, failure_threshold=1)
    breaker.record_failure(Cancelled())
    stats = breaker.stats
    assert (stats.state, stats.failures, stats.cancellations) == (CLOSED, 0, 1)


# -- statistics --------------------------------------------------------------------------


def test_total_calls_adds_up_every_outcome(clock: ManualClock) -> None:
    """total_calls is successes + failures + ignored + cancellations + rejections."""
    breaker = make_breaker(clock, failure_threshold=2)
    breaker.call(lambda: None)
    fail_times(breaker, 1, failing(lambda: PermanentError("bad")))
    PendingCall(breaker).cancel()
    fail_times(breaker, 2)
    fail_times(breaker, 3, lambda: None, expected=CircuitOpenError)
    stats = breaker.stats
    assert (stats.successes, stats.ignored_failures, stats.cancellations) == (1, 1, 1)
    assert (stats.failures, stats.rejections) == (2, 3)
    assert stats.total_calls == 8


def test_stats_are_a_frozen_snapshot(clock: ManualClock) -> None:
    """A stats snapshot does not change when the breaker does, and cannot be edited."""
    breaker = make_breaker(clock)
    snapshot = breaker.stats
    breaker.call(lambda: None)
    assert snapshot.successes == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.successes = 5  # type: ignore[misc]


def test_repr_names_the_breaker_and_its_state(clock: ManualClock) -> None:
    """repr() shows the name and state, for logs."""
    assert repr(opened(clock, failure_threshold=1)) == "CircuitBreaker('dep', state=OPEN)"


def test_rejections_do_not_accumulate_memory_or_chain(clock: ManualClock) -> None:
    """Each rejection is a fresh, unchained error, and many of them leave no residue."""
    breaker = opened(clock, failure_threshold=1, recovery_timeout_s=3600.0)

    def reject() -> CircuitOpenError:
        try:
            breaker.call(lambda: None)
        except CircuitOpenError as exc:
            return exc
        raise AssertionError("not rejected")

    first, second = reject(), reject()
    assert first is not second
    assert first.__context__ is None
    assert first.__cause__ is None
    tracemalloc.start()
    try:
        for _ in range(500):
            reject()
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(5000):
            last = reject()
        growth = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert growth < 20_000
    frames = 0
    entry = last.__traceback__
    while entry is not None:
        frames, entry = frames + 1, entry.tb_next
    assert frames <= 2  # reject() and call(): see the next test


@pytest.mark.anyio
async def test_a_rejection_is_raised_by_call_itself(clock: ManualClock) -> None:
    """While open, `call` and `call_async` raise the rejection from their own frame (no helper)."""
    breaker = opened(clock, failure_threshold=1, recovery_timeout_s=3600.0)

    async def fetch() -> None:
        await anyio.lowlevel.checkpoint()

    with pytest.raises(CircuitOpenError) as sync_rejection:
        breaker.call(lambda: None)
    with pytest.raises(CircuitOpenError) as async_rejection:
        await breaker.call_async(fetch)
    assert traceback.extract_tb(sync_rejection.value.__traceback__)[-1].name == "call"
    assert traceback.extract_tb(async_rejection.value.__traceback__)[-1].name == "call_async"
    assert breaker.stats.rejections == 2


# -- async -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_call_async_returns_and_opens_like_call(clock: ManualClock) -> None:
    """call_async awaits the function, counts failures and rejects once open."""
    breaker = make_breaker(clock, failure_threshold=2)

    async def fetch(value: int) -> int:
        await anyio.lowlevel.checkpoint()
        return value

    async def broken() -> None:
        raise TransientError("down")

    assert await breaker.call_async(fetch, 7) == 7
    for _ in range(2):
        with pytest.raises(TransientError):
            await breaker.call_async(broken)
    with pytest.raises(CircuitOpenError):
        await breaker.call_async(fetch, 8)
    assert breaker.stats.successes == 1


@pytest.mark.anyio
async def test_real_cancellation_of_a_trial_frees_its_slot(clock: ManualClock) -> None:
    """An anyio cancellation of a half-open trial releases the slot for the next call."""
    breaker = half_open(clock, failure_threshold=1)
    with anyio.move_on_after(0.01):
        await breaker.call_async(anyio.sleep, 10)
    assert breaker.stats.cancellations == 1
    assert await breaker.call_async(anyio.sleep, 0) is None
    assert breaker.state is CLOSED
