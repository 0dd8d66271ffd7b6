"""What the supervisor runs: child specifications and their restart policy.

A child is either a plain async callable (`ChildSpec("ticker", tick)`, the same
callable on every start) or a factory (`ChildSpec("consumer", factory=Consumer)`)
that builds a fresh actor object for every start, so a restart never inherits
the half-broken state of the incarnation that crashed. Either way the supervisor
calls `run(task_status=...)`, and the child calls `task_status.started()` once it
is ready to do its work.

Graceful stop: the object whose `run` is called (the factory's product, or the
object a bound method `run` belongs to, e.g. `ChildSpec("sub", sub.run)` for a
nested supervisor) may have a `stop()` method, sync or async. It is called when
the supervisor wants the child gone; the child should then return from `run`
soon. See the package docstring for the whole protocol.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from typing import Protocol

from anyio.abc import TaskStatus

__all__ = ["Actor", "ChildSpec", "Restart", "RunFunction", "StopHook"]


class Restart(enum.Enum):
    """When a child that exited is started again (OTP's permanent/transient/temporary)."""

    ALWAYS = "always"
    """After any exit, even a normal return: a service that must always be up."""

    ON_FAILURE = "on_failure"
    """Only after an exception: a job that may finish, but not by crashing."""

    NEVER = "never"
    """Never: a one-shot task."""


class RunFunction(Protocol):
    """An async callable run as a child; it calls `task_status.started()` once ready."""

    def __call__(self, *, task_status: TaskStatus[None]) -> Awaitable[object]:
        """Run until done, failed, or cancelled."""
        ...


class Actor(Protocol):
    """An object with an async `run`, as the factory of a `ChildSpec` builds them."""

    def run(self, *, task_status: TaskStatus[None]) -> Awaitable[object]:
        """Run until done, failed, or cancelled."""
        ...


StopHook = Callable[[], object]
"""A child's optional `stop()`; if it returns an awaitable, that is awaited."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child of a supervisor: a name, what to run, when to restart, how long to stop.

    Give exactly one of `run` (an async callable) or `factory` (a zero-argument
    callable returning an `Actor`; called anew for every start).
    `shutdown_timeout` is how long a graceful stop may take before the child is
    cancelled; `math.inf` waits for ever (use it for nested supervisors, whose
    own children have timeouts).
    """

    name: str
    run: RunFunction | None = None
    _: KW_ONLY
    factory: Callable[[], Actor] | None = None
    restart: Restart = Restart.ALWAYS
    shutdown_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a child needs a non-empty name")
        if (self.run is None) == (self.factory is None):
            raise ValueError(f"child {self.name!r}: give exactly one of run= or factory=")
        if not self.shutdown_timeout >= 0 or math.isnan(self.shutdown_timeout):
            raise ValueError(
                f"child {self.name!r}: shutdown_timeout must be >= 0, got {self.shutdown_timeout!r}"
            )

    def instantiate(self) -> tuple[RunFunction, StopHook | None]:
        """What to run for one start, and the stop hook of the object behind it."""
        if self.factory is not None:
            actor = self.factory()
            return actor.run, _stop_hook_of(actor)
        assert self.run is not None
        return self.run, _stop_hook_of(getattr(self.run, "__self__", None))


def _stop_hook_of(owner: object) -> StopHook | None:
    stop = getattr(owner, "stop", None)
    return stop if callable(stop) else None
