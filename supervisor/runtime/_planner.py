"""The decision table of `supervisor.runtime` (its package docstring), as a pure state machine.

Given how a child exited and when, `RestartPlanner` says what to do: nothing
more (the child is finished), restart which children after what delay, or
escalate. It keeps the state those answers need (the intensity window, each
child's backoff step, when each child last started) and nothing else: no
tasks, no clock, no I/O, so it is property-tested directly.

The order in which the table is applied, and why:

1. PERMANENT failure: escalate at once, whatever the restart policy.
2. The restart policy decides whether the exit is restarted at all: ALWAYS
   after any exit, ON_FAILURE only after an exception, NEVER not at all. A
   child that is not restarted is finished (its siblings are not touched).
   (Cancellation never gets here: it is how the supervisor stops a child,
   not a failure.)
3. Every restart counts toward the intensity (OTP counts every restart,
   normal returns of ALWAYS children included, so a child that returns in a
   loop escalates too) except CIRCUIT_OPEN. A circuit-open exit says a
   dependency is down and a breaker is already pacing the calls; escalating
   would restart the process into the same open circuit, so it is not counted.
   Instead its wait is the larger of the breaker's `retry_after` and the
   child's backoff, so even a breaker reporting no wait cannot cause a hot
   restart loop, and long outages back off to `Backoff.max`.
4. TRANSIENT, UNKNOWN, AUTH and normal-return restarts wait the child's backoff.
   AUTH also asks for a token refresh before the restart.
5. A restart beyond `max_restarts` within `period` escalates instead.

Backoff steps are per child and reset once the child has run `stable_after`
seconds since it reported started: a crash after a long healthy run starts
again from the shortest delay.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from core.types import ErrorCategory
from supervisor.runtime._backoff import Backoff, Uniform
from supervisor.runtime._intensity import RestartIntensity
from supervisor.runtime._spec import Restart
from supervisor.runtime._strategy import Strategy, group_restart

__all__ = ["Action", "Exit", "Plan", "RestartPlanner"]


@dataclass(frozen=True, slots=True)
class Exit:
    """How a child's run ended by itself: returned (`category` None) or raised."""

    category: ErrorCategory | None = None
    retry_after: float | None = None

    @property
    def failed(self) -> bool:
        """True when the child raised rather than returned."""
        return self.category is not None


class Action(enum.Enum):
    """What the supervisor does about an exit."""

    FINISH = "finish"
    RESTART = "restart"
    ESCALATE = "escalate"


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's answer; the runtime carries it out in field order."""

    action: Action
    stop: tuple[str, ...] = ()
    """Children to stop first, in reverse start order (for ESCALATE: all that run)."""
    restart: tuple[str, ...] = ()
    """Children to start again after `delay`, in start order."""
    drop: tuple[str, ...] = ()
    """Stopped children that are not restarted."""
    delay: float = 0.0
    counted: bool = False
    """Whether this restart counted toward the intensity."""
    refresh_auth: bool = False
    """Whether to ask for a fresh token before restarting."""
    reason: str = ""
    """For ESCALATE: why, in words for the error message."""


@dataclass(slots=True)
class _Track:
    attempt: int = 0
    started_at: float | None = None


class RestartPlanner:
    """Applies the decision table to the exits of a fixed, ordered set of children."""

    def __init__(
        self,
        policies: Mapping[str, Restart],
        *,
        strategy: Strategy,
        intensity: RestartIntensity,
        backoff: Backoff,
        stable_after: float,
        uniform: Uniform = random.uniform,
    ) -> None:
        self._order = tuple(policies)
        self._policies = dict(policies)
        self._never = frozenset(name for name, p in policies.items() if p is Restart.NEVER)
        self._strategy = strategy
        self._intensity = intensity
        self._backoff = backoff
        self._stable_after = stable_after
        self._uniform = uniform
        self._tracks = {name: _Track() for name in self._order}

    def started(self, child: str, now: float) -> None:
        """Note that `child` reported started at `now` (its stable run begins)."""
        self._tracks[child].started_at = now

    def exited(
        self,
        child: str,
        exit: Exit,
        now: float,
        *,
        active: Collection[str],
        pending: Collection[str],
    ) -> Plan:
        """Decide about `child`'s exit at `now`.

        `active` are the other children with a running task, `pending` those
        waiting to be started.
        """
        track = self._tracks[child]
        if track.started_at is not None and now - track.started_at >= self._stable_after:
            track.attempt = 0
        track.started_at = None
        if exit.category is ErrorCategory.PERMANENT:
            return self._escalate(active, "permanent failure")
        if not _wants_restart(self._policies[child], exit):
            return Plan(Action.FINISH)
        counted = exit.category is not ErrorCategory.CIRCUIT_OPEN
        if counted and not self._intensity.try_restart(now):
            limit = self._intensity
            return self._escalate(
                active, f"more than {limit.max_restarts} restarts in {limit.period:g}s"
            )
        delay = self._backoff.delay(track.attempt, uniform=self._uniform)
        track.attempt += 1
        if exit.category is ErrorCategory.CIRCUIT_OPEN:
            delay = max(delay, exit.retry_after or 0.0)
        group = group_restart(
            self._strategy, child, self._order, active=active, pending=pending, never=self._never
        )
        return Plan(
            Action.RESTART,
            stop=group.stop,
            restart=group.restart,
            drop=group.drop,
            delay=delay,
            counted=counted,
            refresh_auth=exit.category is ErrorCategory.AUTH,
        )

    def _escalate(self, active: Collection[str], reason: str) -> Plan:
        stop = tuple(name for name in reversed(self._order) if name in active)
        return Plan(Action.ESCALATE, stop=stop, reason=reason)


def _wants_restart(policy: Restart, exit: Exit) -> bool:
    if policy is Restart.ALWAYS:
        return True
    return policy is Restart.ON_FAILURE and exit.failed
