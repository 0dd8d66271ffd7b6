"""The circuit breaker against a plain model of its rules, driven by Hypothesis.

Random interleavings of calls held in flight, instant calls, reported outcomes,
resets and clock moves; after every step the breaker's state, counters,
retry_after and listener events must equal the model's, and the events must form
a valid chain. The model restates the rules as simply as possible: one counter
per quantity, an epoch number bumped at every transition.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
from clocks import ManualClock
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from resilience_fakes import Cancelled, PendingCall, TransitionLog

from core.errors import AuthError, CircuitOpenError, PermanentError, TransientError
from core.resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

VALID_TRANSITIONS = {
    (CLOSED, OPEN),
    (OPEN, HALF_OPEN),
    (HALF_OPEN, OPEN),
    (HALF_OPEN, CLOSED),
    (OPEN, CLOSED),  # reset()
}

SUCCESS, CANCEL = "success", "cancel"
COUNTED_ERRORS: dict[str, Callable[[], Exception]] = {
    "transient": lambda: TransientError("down"),
    "unknown": lambda: RuntimeError("unclassified"),
}
IGNORED_ERRORS: dict[str, Callable[[], Exception]] = {
    "permanent": lambda: PermanentError("bad input"),
    "auth": lambda: AuthError("token rejected"),
    "circuit_open": lambda: CircuitOpenError("downstream", 1.0),
}
OUTCOMES = [SUCCESS, CANCEL, *COUNTED_ERRORS, *IGNORED_ERRORS]


@dataclasses.dataclass
class BreakerModel:
    """The breaker's rules, restated without concurrency or cleverness."""

    config: CircuitBreakerConfig
    state: CircuitState = CLOSED
    epoch: int = 0
    half_open_at: float = math.inf
    trials_in_flight: int = 0
    trial_successes: int = 0
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    successes: int = 0
    failures: int = 0
    ignored_failures: int = 0
    cancellations: int = 0
    rejections: int = 0
    last_failure_time: float | None = None
    opened_at: float | None = None
    events: list[tuple[CircuitState, CircuitState]] = dataclasses.field(default_factory=list)

    def transition(self, new: CircuitState, now: float) -> None:
        """Enter `new`, starting a new epoch and recording the event."""
        self.events.append((self.state, new))
        self.state = new
        self.epoch += 1
        self.trials_in_flight = 0
        self.trial_successes = 0
        self.half_open_at = now + self.config.recovery_timeout_s if new is OPEN else math.inf
        if new is OPEN:
            self.opened_at = now
        if new is CLOSED:
            self.consecutive_failures = 0

    def tick(self, now: float) -> None:
        """Half-open once the recovery timeout has passed."""
        if self.state is OPEN and now >= self.half_open_at:
            self.transition(HALF_OPEN, now)

    def admit(self, now: float) -> tuple[int, bool] | None:
        """(epoch, holds a trial slot) for an admitted call; None for a rejection."""
        self.tick(now)
        if self.state is CLOSED:
            return self.epoch, False
        if self.state is HALF_OPEN and self.trials_in_flight < self.config.half_open_max_calls:
            self.trials_in_flight += 1
            return self.epoch, True
        self.rejections += 1
        return None

    def finish(self, epoch: int, holds_slot: bool, outcome: str, now: float) -> None:
        """Apply the outcome of a call admitted in `epoch` (or reported, holding no slot)."""
        current = epoch == self.epoch
        if current and holds_slot:
            self.trials_in_flight -= 1
        if outcome == CANCEL:
            self.cancellations += 1
        elif outcome == SUCCESS:
            self.successes += 1
            self.consecutive_successes += 1
            if current and self.state is not OPEN:
                self.consecutive_failures = 0
                if self.state is HALF_OPEN:
                    self.trial_successes += 1
                    if self.trial_successes >= self.config.success_threshold:
                        self.transition(CLOSED, now)
        elif outcome in IGNORED_ERRORS:
            self.ignored_failures += 1
        else:
            self.failures += 1
            self.last_failure_time = now
            if current and self.state is not OPEN:
                self.consecutive_failures += 1
                self.consecutive_successes = 0
                if (
                    self.state is HALF_OPEN
                    or self.consecutive_failures >= self.config.failure_threshold
                ):
                    self.transition(OPEN, now)

    def reset(self, now: float) -> None:
        """Close and forget the streaks."""
        if self.state is not CLOSED:
            self.transition(CLOSED, now)
        self.consecutive_failures = 0
        self.consecutive_successes = 0


@dataclasses.dataclass
class InFlight:
    """A call held in flight, with what the model knows of its admission."""

    call: PendingCall
    epoch: int
    holds_slot: bool


def run_outcome(outcome: str) -> Callable[[], str]:
    """A function for `breaker.call` that ends with `outcome`."""

    def body() -> str:
        if outcome == CANCEL:
            raise Cancelled()
        if outcome == SUCCESS:
            return "done"
        raise {**COUNTED_ERRORS, **IGNORED_ERRORS}[outcome]()

    return body


def outcome_error(outcome: str) -> BaseException:
    """A fresh exception for a failing `outcome`."""
    if outcome == CANCEL:
        return Cancelled()
    return {**COUNTED_ERRORS, **IGNORED_ERRORS}[outcome]()


class BreakerMachine(RuleBasedStateMachine):
    """Drives a real CircuitBreaker and the model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.log = TransitionLog()
        self.in_flight: list[InFlight] = []

    @initialize(
        failure_threshold=st.integers(1, 3),
        recovery_timeout_s=st.sampled_from([1.0, 5.0]),
        half_open_max_calls=st.integers(1, 2),
        success_threshold=st.integers(1, 2),
    )
    def build(
        self,
        failure_threshold: int,
        recovery_timeout_s: float,
        half_open_max_calls: int,
        success_threshold: int,
    ) -> None:
        """A breaker with a generated config, a listener, and its model."""
        config = CircuitBreakerConfig(
            failure_threshold, recovery_timeout_s, half_open_max_calls, success_threshold
        )
        self.breaker = CircuitBreaker("model", config, clock=self.clock)
        self.breaker.add_listener(self.log)
        self.model = BreakerModel(config)

    @precondition(lambda self: len(self.in_flight) < 5)
    @rule()
    def start_call(self) -> None:
        """Start a call and keep it in flight, unless the model expects a rejection."""
        expected = self.model.admit(self.clock.now)
        if expected is None:
            with pytest.raises(CircuitOpenError):
                PendingCall(self.breaker)
            return
        self.in_flight.append(InFlight(PendingCall(self.breaker), *expected))

    def finish(self, pick: int, outcome: str) -> None:
        """Finish one of the calls in flight with `outcome`."""
        flight = self.in_flight.pop(pick % len(self.in_flight))
        self.model.finish(flight.epoch, flight.holds_slot, outcome, self.clock.now)
        if outcome == SUCCESS:
            assert flight.call.succeed() == "done"
        elif outcome == CANCEL:
            assert isinstance(flight.call.cancel(), Cancelled)
        else:
            error = outcome_error(outcome)
            assert flight.call.fail(error) is error

    # Success, cancellation and errors are separate rules so each is as likely as
    # any other step: they decide the half-open paths worth exploring.

    @precondition(lambda self: self.in_flight)
    @rule(pick=st.integers(0, 4))
    def finish_call_with_success(self, pick: int) -> None:
        """A call in flight returns."""
        self.finish(pick, SUCCESS)

    @precondition(lambda self: self.in_flight)
    @rule(pick=st.integers(0, 4))
    def cancel_call(self, pick: int) -> None:
        """A call in flight is cancelled."""
        self.finish(pick, CANCEL)

    @precondition(lambda self: self.in_flight)
    @rule(pick=st.integers(0, 4), outcome=st.sampled_from([*COUNTED_ERRORS, *IGNORED_ERRORS]))
    def finish_call_with_error(self, pick: int, outcome: str) -> None:
        """A call in flight raises an error of some category."""
        self.finish(pick, outcome)

    @rule(outcome=st.sampled_from(OUTCOMES))
    def instant_call(self, outcome: str) -> None:
        """Make a synchronous call that ends with `outcome` at once."""
        expected = self.model.admit(self.clock.now)
        if expected is None:
            with pytest.raises(CircuitOpenError):
                self.breaker.call(run_outcome(outcome))
            return
        self.model.finish(*expected, outcome, self.clock.now)
        if outcome == SUCCESS:
            assert self.breaker.call(run_outcome(outcome)) == "done"
        else:
            with pytest.raises(BaseException) as raised:  # the type is checked below
                self.breaker.call(run_outcome(outcome))
            assert type(raised.value) is type(outcome_error(outcome))

    @rule(outcome=st.sampled_from(OUTCOMES))
    def report_outcome(self, outcome: str) -> None:
        """Report an outcome through record_success / record_failure."""
        self.model.finish(self.model.epoch, False, outcome, self.clock.now)
        if outcome == SUCCESS:
            self.breaker.record_success()
        else:
            self.breaker.record_failure(outcome_error(outcome))

    @rule(seconds=st.one_of(st.floats(0.0, 6.0), st.sampled_from([1.0, 5.0])))
    def advance_time(self, seconds: float) -> None:
        """Let time pass (the invariant then observes any time-driven transition)."""
        self.clock.advance(seconds)

    @rule()
    def fail_until_open(self) -> None:
        """Make transient calls until the model opens (a shortcut to the deeper states).

        Bounded: while half-open with every slot taken, calls are rejected instead.
        """
        for _ in range(self.model.config.failure_threshold):
            if self.model.state is OPEN:
                break
            self.instant_call("transient")

    @rule()
    def wait_for_recovery(self) -> None:
        """Let exactly the recovery timeout pass (or what is left of it while open)."""
        left = self.model.half_open_at - self.clock.now
        self.clock.advance(
            left if self.model.state is OPEN else self.model.config.recovery_timeout_s
        )

    @rule()
    def reset(self) -> None:
        """Reset the breaker by hand."""
        self.model.reset(self.clock.now)
        self.breaker.reset()

    @invariant()
    def breaker_matches_the_model(self) -> None:
        """State, counters, retry_after and listener events equal the model's, in a valid chain.

        Reading `stats` first performs any time-driven transition due, as the
        model's tick does.
        """
        model = self.model
        model.tick(self.clock.now)
        expected_stats = (
            model.state,
            model.successes,
            model.failures,
            model.ignored_failures,
            model.cancellations,
            model.rejections,
            model.consecutive_failures,
            model.consecutive_successes,
            len(model.events),
            model.last_failure_time,
            model.opened_at,
        )
        assert dataclasses.astuple(self.breaker.stats) == expected_stats
        assert self.breaker.state is model.state
        time_left = model.half_open_at - self.clock.now if model.state is OPEN else 0.0
        assert self.breaker.retry_after() == pytest.approx(max(0.0, time_left))
        assert 0 <= model.trials_in_flight <= model.config.half_open_max_calls
        transitions = self.log.transitions
        assert transitions == model.events
        previous = CLOSED
        for old, new in transitions:
            assert old is previous
            assert (old, new) in VALID_TRANSITIONS
            previous = new

    def teardown(self) -> None:
        """Cancel calls still in flight so no coroutine is left suspended."""
        for flight in self.in_flight:
            flight.call.cancel()


BreakerMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=60, deadline=None)
TestBreakerAgainstModel = BreakerMachine.TestCase
TestBreakerAgainstModel.__doc__ = "The breaker behaves as the model for any sequence of steps."
