"""Watches every circuit breaker: logs its transitions, keeps its stats, steers the consumer.

* Transitions arrive through a listener on each breaker. Listeners run in whatever
  thread made the breaker change (a handler in a worker thread, or the event
  loop), so the listener only hands a `BreakerStateChanged` to a `ThreadBridge`:
  it never blocks that thread, and nothing is lost or reordered.
* OPEN -> HALF_OPEN is time-driven and happens only when someone looks at the
  breaker, so the monitor also reads every breaker's stats each `tick_interval`
  (which also refreshes the snapshot that /metrics and /healthz read).
* The handler's breaker steers the consumer: OPEN sends `PausePartitions` (do not
  fetch records that would only be rejected), HALF_OPEN sends `ResumePartitions`
  (the trial call needs a record), CLOSED keeps it resumed, and a failed trial
  (back to OPEN) pauses again. Commands are only sent when they change something.
* Breakers made after the monitor (one per download host, as hosts appear) join with
  `watch`: from then on their transitions are logged and their state reported like
  the others'. Only the handler's breaker steers; a downstream breaker that is open
  refuses the handler's calls, and the consumer pauses on that refusal itself.
* On each start the monitor registers its listener and re-reads every breaker, so
  a transition that happened while it was down still steers the consumer; on stop
  it removes the listener, so a restarted monitor never hears a transition twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from actors.breaker_monitor._thread_bridge import ThreadBridge
from actors.messages import BreakerStateChanged, PausePartitions, ResumePartitions
from core.resilience.circuit_breaker import CircuitBreaker
from core.resilience.circuit_state import CircuitState, CircuitStats

__all__ = ["BreakerHealth", "BreakerMonitorActor", "PartitionCommand"]

PartitionCommand = PausePartitions | ResumePartitions

_logger = logging.getLogger("actors.breaker_monitor")


@dataclass(frozen=True, slots=True)
class BreakerHealth:
    """One breaker as the monitor last saw it: state, counters and the wait before a trial."""

    state: CircuitState
    stats: CircuitStats
    retry_after: float


class BreakerMonitorActor:
    """Logs breaker transitions, keeps their stats, pauses and resumes the consumer."""

    def __init__(
        self,
        breakers: Iterable[CircuitBreaker],
        commands: MemoryObjectSendStream[PartitionCommand],
        *,
        handler_breaker_name: str | None = None,
        tick_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`handler_breaker_name` names the breaker whose state pauses the consumer (None: none)."""
        self._breakers: dict[str, CircuitBreaker] = {}
        for breaker in breakers:
            if breaker.name in self._breakers:
                raise ValueError(f"two breakers are named {breaker.name!r}")
            self._breakers[breaker.name] = breaker
        if handler_breaker_name is not None and handler_breaker_name not in self._breakers:
            raise ValueError(
                f"handler breaker {handler_breaker_name!r} is not among the monitored "
                f"breakers {sorted(self._breakers)}"
            )
        if not tick_interval > 0:
            raise ValueError(f"tick_interval must be > 0 seconds, got {tick_interval!r}")
        self._commands = commands
        self._handler_breaker = handler_breaker_name
        self._tick_interval = tick_interval
        self._clock = clock
        self._changes: ThreadBridge[BreakerStateChanged] = ThreadBridge()
        self._health = {name: _health_of(breaker) for name, breaker in self._breakers.items()}
        self._paused = False
        self._listening = False

    @property
    def paused(self) -> bool:
        """The monitor last told the consumer to pause (and has not resumed it since)."""
        return self._paused

    def stats(self) -> dict[str, BreakerHealth]:
        """Every breaker's last seen state and counters, by name (for /metrics and /healthz)."""
        return dict(self._health)

    def watch(self, breaker: CircuitBreaker) -> None:
        """Watch `breaker` too, from now on (a breaker made after the monitor); a name
        already watched is left alone. Call it from the event loop's thread."""
        if breaker.name in self._breakers:
            return
        self._breakers[breaker.name] = breaker
        self._health[breaker.name] = _health_of(breaker)
        if self._listening:
            breaker.add_listener(self._on_transition)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch the breakers until cancelled; started once the listeners are registered."""
        self._changes.bind()
        for breaker in self._breakers.values():
            breaker.add_listener(self._on_transition)
        self._listening = True
        try:
            await self._catch_up()
            task_status.started()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._tick_forever)
                while True:
                    await self._handle(await self._changes.receive())
        finally:
            self._listening = False
            for breaker in self._breakers.values():
                breaker.remove_listener(self._on_transition)

    def _on_transition(self, name: str, old_state: CircuitState, new_state: CircuitState) -> None:
        """The breaker listener: runs in any thread, so it only hands the change over."""
        self._changes.submit(BreakerStateChanged(name, old_state, new_state, at=self._clock()))

    async def _catch_up(self) -> None:
        self._look_at_every_breaker()
        if self._handler_breaker is not None:
            await self._steer(self._handler_breaker, self._health[self._handler_breaker].state)

    async def _tick_forever(self) -> None:
        while True:
            await anyio.sleep(self._tick_interval)
            self._look_at_every_breaker()

    def _look_at_every_breaker(self) -> None:
        for name, breaker in self._breakers.items():
            self._health[name] = _health_of(breaker)

    async def _handle(self, change: BreakerStateChanged) -> None:
        old_state, new_state = change.old_state, change.new_state
        _logger.log(
            logging.WARNING if new_state is CircuitState.OPEN else logging.INFO,
            "circuit breaker %s: %s -> %s",
            change.breaker,
            _label(old_state),
            _label(new_state),
            extra={
                "event": "breaker_transition",
                "breaker": change.breaker,
                "from": _label(old_state),
                "to": _label(new_state),
                "at": change.at,
            },
        )
        self._health[change.breaker] = _health_of(self._breakers[change.breaker])
        if change.breaker == self._handler_breaker and isinstance(new_state, CircuitState):
            await self._steer(change.breaker, new_state)

    async def _steer(self, handler_breaker: str, state: CircuitState) -> None:
        pause = state is CircuitState.OPEN
        if pause == self._paused:
            return
        command = PausePartitions(handler_breaker) if pause else ResumePartitions(handler_breaker)
        await self._commands.send(command)
        self._paused = pause


def _health_of(breaker: CircuitBreaker) -> BreakerHealth:
    stats = breaker.stats  # reading it moves an overdue OPEN breaker to HALF_OPEN
    return BreakerHealth(state=stats.state, stats=stats, retry_after=breaker.retry_after())


def _label(state: Enum) -> str:
    return str(state.value)
