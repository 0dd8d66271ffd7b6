"""Test helpers for the supervision runtime: virtual time and scriptable children.

`VirtualTimeLoop` is an asyncio event loop whose clock jumps straight to the next
timer whenever nothing is ready to run (trio's MockClock autojump, for asyncio):
anyio.sleep, move_on_after and the supervisor's backoff all run in virtual time,
deterministically and instantly, with no change to the code under test.
Use it through a module's `anyio_backend` fixture returning `virtual_time_backend()`.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus

from supervisor import EventKind, SupervisorEvent

_DEADLOCK_AFTER = 5.0
"""Real seconds with no timer, no ready callback and no I/O before a test is declared stuck."""


class _JumpingSelector(selectors.DefaultSelector):
    """Polls real I/O without blocking, and advances virtual time instead of waiting."""

    def __init__(self, advance: Callable[[float], None]) -> None:
        super().__init__()
        self._advance = advance

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            ready = super().select(_DEADLOCK_AFTER)
            if not ready:
                raise RuntimeError("virtual time: every task is blocked and no timer is pending")
            return ready
        self._advance(timeout)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock starting at 0.0 that never really sleeps."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(selector=_JumpingSelector(self._advance))

    def time(self) -> float:
        """The virtual time."""
        return self._now

    def _advance(self, seconds: float) -> None:
        self._now += seconds


def virtual_time_backend() -> tuple[str, dict[str, Any]]:
    """The `anyio_backend` value that runs a test on asyncio in virtual time."""
    return ("asyncio", {"loop_factory": VirtualTimeLoop})


@dataclass
class EventLog:
    """Collects a supervisor's events (pass `log.append` as `on_event`)."""

    events: list[SupervisorEvent] = field(default_factory=list)

    def append(self, event: SupervisorEvent) -> None:
        """Record one event."""
        self.events.append(event)

    def steps(self, *kinds: EventKind) -> list[tuple[str, str]]:
        """(kind, child) of each event, optionally only of the given kinds."""
        return [(e.kind.value, e.child) for e in self.events if not kinds or e.kind in kinds]

    def of(self, kind: EventKind) -> list[SupervisorEvent]:
        """The events of one kind, in order."""
        return [e for e in self.events if e.kind is kind]


class Puppet:
    """A child whose every incarnation reports started and then does what it is told.

    `crash(exc)` makes the running incarnation raise `exc`, `finish()` makes it
    return; `alive` counts incarnations whose `run` has not ended yet (leak check).
    With `graceful=True` it has a `stop()` method (it returns when asked);
    `ignore_stop=True` makes that `stop()` do nothing.
    """

    def __init__(
        self,
        name: str,
        *,
        graceful: bool = False,
        ignore_stop: bool = False,
        fail_starts: list[BaseException] | None = None,
    ) -> None:
        self.name = name
        self.graceful = graceful
        self.ignore_stop = ignore_stop
        self.fail_starts = list(fail_starts or [])
        self.alive = 0
        self.starts = 0
        self.stop_calls = 0
        self.cancelled = 0
        self._order: _Command | None = None
        self._wake = anyio.Event()

    def factory(self) -> _PuppetActor:
        """Build the object for one incarnation (use as a ChildSpec factory)."""
        return _PuppetActor(self)

    @property
    def running(self) -> bool:
        """True while an incarnation has started and not ended."""
        return self.alive > 0 and self._order is None

    def crash(self, error: BaseException) -> None:
        """Make the current incarnation raise `error`."""
        self._command(_Command(error=error))

    def finish(self) -> None:
        """Make the current incarnation return normally."""
        self._command(_Command(error=None))

    def _command(self, order: _Command) -> None:
        self._order = order
        self._wake.set()

    async def serve(self, task_status: TaskStatus[None], stop: anyio.Event) -> None:
        """The body of one incarnation."""
        self.alive += 1
        try:
            if self.fail_starts:
                raise self.fail_starts.pop(0)
            self.starts += 1
            self._order, self._wake = None, anyio.Event()
            task_status.started()
            async with anyio.create_task_group() as group:

                async def on_stop() -> None:
                    await stop.wait()
                    group.cancel_scope.cancel()

                group.start_soon(on_stop)
                await self._wake.wait()
                group.cancel_scope.cancel()
            if stop.is_set():
                return
            order, self._order = self._order, None
            if order is not None and order.error is not None:
                raise order.error
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        finally:
            self.alive -= 1


@dataclass
class _Command:
    error: BaseException | None


class _PuppetActor:
    def __init__(self, puppet: Puppet) -> None:
        self._puppet = puppet
        self._stop = anyio.Event()
        if puppet.graceful:
            self.stop = self._request_stop

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self._puppet.serve(task_status, self._stop)

    async def _request_stop(self) -> None:
        self._puppet.stop_calls += 1
        if not self._puppet.ignore_stop:
            self._stop.set()
