"""A circuit breaker: stop calling a dependency that keeps failing, probe it, resume.

Decisions:

* Only TRANSIENT and UNKNOWN failures (by `core.errors.classify_exception`, or the
  `classifier` given, e.g. `core.errors.compose_classifier(yours)`) count
  against the dependency. PERMANENT, AUTH and CIRCUIT_OPEN errors say nothing about
  its health: they are re-raised and counted as neither failure nor success (they
  do not break a failure streak, and a half-open trial that ends with one frees its
  slot without a verdict, so the next call becomes the trial).
* A cancellation (a BaseException that is not an Exception) is not an outcome
  either; it only frees the half-open slot it held.
* Every stay in a state is an `_Epoch` object, replaced at each transition. A call
  remembers the epoch that admitted it, and its outcome drives the state machine
  only if that epoch is still current: a slow call admitted while closed cannot
  reopen a half-open circuit, take a trial slot it never held, or count toward
  closing it. It still counts in the statistics.
* OPEN -> HALF_OPEN is time-driven: it happens when anyone looks (`state`,
  `stats`, a call) after `recovery_timeout_s`. No timer thread.
* While half-open with every trial slot taken, the rejection's `retry_after` is
  `recovery_timeout_s`: the trial's verdict is unknown, and if it fails the circuit
  stays open that long anyway. `retry_after()` is 0 outside OPEN.
* `reset()` closes the circuit and clears the streaks; lifetime totals stay.
* `record_success()` / `record_failure(exc)` report calls the caller ran itself:
  they are judged against the current state and hold no trial slot.
* Listeners run after the lock is released, in the thread that caused the
  transition, in transition order (see `circuit_listeners`); a listener that
  feeds an event loop must hand over thread-safely.

Speed: the closed success path takes no lock, reads no clock and creates no
object: it reads the current epoch (one atomic attribute read), runs the call and
bumps a lock-free counter; only when a failure streak is pending does a success
take the lock to clear it. An open circuit rejects without the lock too, inside
`call` / `call_async` itself, so a rejection crosses no other frame. All other
paths (failures, half-open trials, transitions) take one `threading.Lock`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Final, ParamSpec, TypeVar

from core.errors import CircuitOpenError, classify_exception
from core.resilience.atomic_counter import AtomicCounter
from core.resilience.circuit_config import (
    DEFAULT_CIRCUIT_CONFIG,
    KAFKA_CIRCUIT_CONFIG,
    KUSTO_CIRCUIT_CONFIG,
    ONELAKE_CIRCUIT_CONFIG,
    CircuitBreakerConfig,
)
from core.resilience.circuit_listeners import CircuitListener, TransitionPublisher
from core.resilience.circuit_state import CircuitState, CircuitStats
from core.types import ErrorCategory, ErrorClassifier

__all__ = [
    "DEFAULT_CIRCUIT_CONFIG",
    "KAFKA_CIRCUIT_CONFIG",
    "KUSTO_CIRCUIT_CONFIG",
    "ONELAKE_CIRCUIT_CONFIG",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitListener",
    "CircuitState",
    "CircuitStats",
]

P = ParamSpec("P")
T = TypeVar("T")

_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN
_TRANSIENT: Final = ErrorCategory.TRANSIENT
_UNKNOWN: Final = ErrorCategory.UNKNOWN


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class _Epoch:
    """One stay in one state; identity tells a call admitted earlier apart."""

    state: CircuitState
    half_open_at: float = math.inf
    """While OPEN: the clock reading from which trial calls are let through."""


class CircuitBreaker:
    """Guards one dependency; share one instance among every caller of it (thread-safe)."""

    __slots__ = (
        "_cancellations",
        "_classify",
        "_clock",
        "_consecutive_failures",
        "_count_rejection",
        "_count_success",
        "_epoch",
        "_failures",
        "_ignored_failures",
        "_last_failure_time",
        "_lock",
        "_opened_at",
        "_publisher",
        "_rejections",
        "_state_changes",
        "_success_mark",
        "_successes",
        "_trial_successes",
        "_trials_in_flight",
        "config",
        "name",
    )

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig = DEFAULT_CIRCUIT_CONFIG,
        clock: Callable[[], float] = time.monotonic,
        *,
        classifier: ErrorClassifier | None = None,
    ) -> None:
        self.name = name
        self._classify = classifier.classify if classifier is not None else classify_exception
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._publisher = TransitionPublisher(name)
        self._epoch = _Epoch(_CLOSED)
        self._successes = AtomicCounter()
        self._count_success = self._successes.increment
        self._rejections = AtomicCounter()
        self._count_rejection = self._rejections.increment
        self._failures = 0
        self._ignored_failures = 0
        self._cancellations = 0
        self._state_changes = 0
        self._consecutive_failures = 0
        self._success_mark = 0
        self._trials_in_flight = 0
        self._trial_successes = 0
        self._last_failure_time: float | None = None
        self._opened_at: float | None = None

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._epoch.state.name})"

    # -- protected calls -------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` unless the circuit is open (then CircuitOpenError)."""
        epoch = self._epoch
        if epoch.state is not _CLOSED:
            if epoch.state is _OPEN and (now := self._clock()) < epoch.half_open_at:
                self._count_rejection()  # the rejection path: no lock, no other frame
                raise CircuitOpenError(self.name, epoch.half_open_at - now)
            epoch = self._admit()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self._record_error(epoch, exc)
            raise
        except BaseException:
            self._record_cancellation(epoch)
            raise
        self._count_success()
        if epoch.state is not _CLOSED or self._consecutive_failures:
            self._record_success(epoch)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `fn(*args, **kwargs)` unless the circuit is open (then CircuitOpenError)."""
        epoch = self._epoch
        if epoch.state is not _CLOSED:
            if epoch.state is _OPEN and (now := self._clock()) < epoch.half_open_at:
                self._count_rejection()  # the rejection path: no lock, no other frame
                raise CircuitOpenError(self.name, epoch.half_open_at - now)
            epoch = self._admit()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self._record_error(epoch, exc)
            raise
        except BaseException:
            self._record_cancellation(epoch)
            raise
        self._count_success()
        if epoch.state is not _CLOSED or self._consecutive_failures:
            self._record_success(epoch)
        return result

    def record_success(self) -> None:
        """Report a success of a call the caller ran itself, judged against the current state."""
        self._count_success()
        self._record_success(None)

    def record_failure(self, exc: BaseException) -> None:
        """Report how a call the caller ran itself failed; classified like a failure in `call`."""
        if isinstance(exc, Exception):
            self._record_error(None, exc)
        else:
            self._record_cancellation(None)

    # -- inspection and control --------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose recovery timeout passed becomes half-open."""
        epoch = self._epoch
        if epoch.state is _OPEN and self._clock() >= epoch.half_open_at:
            with self._lock:
                self._half_open_if_due()
            self._publisher.deliver()
            return self._epoch.state
        return epoch.state

    @property
    def stats(self) -> CircuitStats:
        """A consistent snapshot of the counters (and the state, time-driven as for `state`)."""
        with self._lock:
            self._half_open_if_due()
            successes = self._successes.value()
            snapshot = CircuitStats(
                state=self._epoch.state,
                successes=successes,
                failures=self._failures,
                ignored_failures=self._ignored_failures,
                cancellations=self._cancellations,
                rejections=self._rejections.value(),
                consecutive_failures=self._consecutive_failures,
                consecutive_successes=successes - self._success_mark,
                state_changes=self._state_changes,
                last_failure_time=self._last_failure_time,
                opened_at=self._opened_at,
            )
        self._publisher.deliver()
        return snapshot

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a trial call through; 0 if it is not open."""
        epoch = self._epoch
        if epoch.state is not _OPEN:
            return 0.0
        return max(0.0, epoch.half_open_at - self._clock())

    def add_listener(self, listener: CircuitListener) -> None:
        """Call `listener(name, old_state, new_state)` after each transition, in order."""
        self._publisher.add(listener)

    def remove_listener(self, listener: CircuitListener) -> None:
        """Stop notifying `listener`; ValueError if it was never added."""
        self._publisher.remove(listener)

    def reset(self) -> None:
        """Close the circuit and forget the streaks (an operator's override); totals stay."""
        with self._lock:
            if self._epoch.state is not _CLOSED:
                self._transition(_CLOSED)
            self._consecutive_failures = 0
            self._success_mark = self._successes.value()
        self._publisher.deliver()

    # -- the state machine ------------------------------------------------------

    def _admit(self) -> _Epoch:
        """Admit a call while not closed, or raise CircuitOpenError.

        The callers have already rejected calls while OPEN before the recovery timeout
        (the common case, inlined); what is left needs the lock.
        """
        with self._lock:
            self._half_open_if_due()
            epoch = self._epoch
            admitted = epoch.state is _CLOSED or (
                epoch.state is _HALF_OPEN
                and self._trials_in_flight < self.config.half_open_max_calls
            )
            if epoch.state is _HALF_OPEN and admitted:
                self._trials_in_flight += 1
        self._publisher.deliver()
        if admitted:
            return epoch
        self._count_rejection()
        if epoch.state is _OPEN:
            raise CircuitOpenError(self.name, epoch.half_open_at - self._clock())
        raise CircuitOpenError(self.name, self.config.recovery_timeout_s)

    def _record_success(self, admitted: _Epoch | None) -> None:
        """Apply a success (already counted) to the state machine.

        `admitted` is the epoch that admitted the call, or None for an outcome
        reported through `record_success` (current state, no trial slot held).
        """
        with self._lock:
            current = self._epoch
            if admitted is not None and admitted is not current:
                return
            if current.state is _OPEN:
                return
            self._consecutive_failures = 0
            if current.state is _HALF_OPEN:
                if admitted is not None:
                    self._trials_in_flight -= 1
                self._trial_successes += 1
                if self._trial_successes >= self.config.success_threshold:
                    self._transition(_CLOSED)
        self._publisher.deliver()

    def _record_error(self, admitted: _Epoch | None, exc: Exception) -> None:
        """Count an error and apply it to the state machine (see `_record_success`)."""
        category = self._classify(exc)
        counted = category is _TRANSIENT or category is _UNKNOWN  # hashing an Enum is slow
        with self._lock:
            current = self._epoch
            is_current = admitted is None or admitted is current
            if is_current and admitted is not None and current.state is _HALF_OPEN:
                self._trials_in_flight -= 1
            if not counted:
                self._ignored_failures += 1
                return
            now = self._clock()
            self._failures += 1
            self._last_failure_time = now
            if not is_current or current.state is _OPEN:
                return
            self._consecutive_failures += 1
            self._success_mark = self._successes.value()
            if (
                current.state is _HALF_OPEN
                or self._consecutive_failures >= self.config.failure_threshold
            ):
                self._transition(_OPEN, half_open_at=now + self.config.recovery_timeout_s)
                self._opened_at = now
        self._publisher.deliver()

    def _record_cancellation(self, admitted: _Epoch | None) -> None:
        """Count a cancelled call and free the trial slot it held, without a verdict."""
        with self._lock:
            self._cancellations += 1
            current = self._epoch
            if admitted is current and current.state is _HALF_OPEN:
                self._trials_in_flight -= 1

    def _half_open_if_due(self) -> None:
        """Move OPEN -> HALF_OPEN once the recovery timeout has passed (lock held)."""
        epoch = self._epoch
        if epoch.state is _OPEN and self._clock() >= epoch.half_open_at:
            self._transition(_HALF_OPEN)

    def _transition(self, new_state: CircuitState, half_open_at: float = math.inf) -> None:
        """Start a new epoch in `new_state` and queue the event (lock held)."""
        old_state = self._epoch.state
        self._epoch = _Epoch(new_state, half_open_at)
        self._state_changes += 1
        self._trials_in_flight = 0
        self._trial_successes = 0
        if new_state is _CLOSED:
            self._consecutive_failures = 0
        self._publisher.enqueue(old_state, new_state)
