"""BreakerMonitorActor over real CircuitBreakers: transitions logged, consumer paused and resumed.

The breakers run on a manual clock, so "recovery timeout passed" is a step of the test,
not a wait; the monitor's tick runs in real time, every few milliseconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from clocks import ManualClock

from actors.breaker_monitor import BreakerMonitorActor, PartitionCommand
from actors.messages import PausePartitions, ResumePartitions
from core.errors import ConnectionError as PipelineConnectionError
from core.resilience.circuit_breaker import CircuitBreaker
from core.resilience.circuit_config import CircuitBreakerConfig
from core.resilience.circuit_state import CircuitState

pytestmark = pytest.mark.anyio

CONFIG = CircuitBreakerConfig(failure_threshold=2, recovery_timeout_s=30.0, success_threshold=1)
TICK = 0.005


def fail() -> None:
    """A downstream call that fails in a way a retry could fix (counted by the breaker)."""
    raise PipelineConnectionError("downstream refused the connection")


def succeed() -> None:
    """A downstream call that works."""


def open_breaker(breaker: CircuitBreaker) -> None:
    """Fail enough calls through `breaker` to open it."""
    for _ in range(breaker.config.failure_threshold):
        with pytest.raises(PipelineConnectionError):
            breaker.call(fail)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (a few ticks at most) until `condition()` holds."""
    with anyio.fail_after(5):
        while True:
            if condition():
                return
            await anyio.sleep(TICK)


@dataclass
class Watched:
    """A running monitor and what a test observes of it."""

    monitor: BreakerMonitorActor
    commands: MemoryObjectReceiveStream[PartitionCommand]
    caplog: pytest.LogCaptureFixture

    def transitions(self, breaker: str | None = None) -> list[tuple[str, str]]:
        """The (from, to) pairs the monitor logged, optionally for one breaker only."""
        return [
            (record.__dict__["from"], record.__dict__["to"])
            for record in self.caplog.records
            if record.__dict__.get("event") == "breaker_transition"
            and breaker in (None, record.__dict__["breaker"])
        ]

    async def next_command(self) -> PartitionCommand:
        """The next pause/resume command the monitor sent."""
        with anyio.fail_after(5):
            return await self.commands.receive()


def make_monitor(
    breakers: list[CircuitBreaker], handler: str | None = None, buffer: int = 16
) -> tuple[BreakerMonitorActor, MemoryObjectReceiveStream[PartitionCommand]]:
    """A monitor and the receiving end of its command channel (the consumer's inbox)."""
    send, receive = anyio.create_memory_object_stream[PartitionCommand](buffer)
    monitor = BreakerMonitorActor(breakers, send, handler_breaker_name=handler, tick_interval=TICK)
    return monitor, receive


@asynccontextmanager
async def watching(
    breakers: list[CircuitBreaker],
    caplog: pytest.LogCaptureFixture,
    *,
    handler: str | None = None,
    buffer: int = 16,
    reuse: tuple[BreakerMonitorActor, MemoryObjectReceiveStream[PartitionCommand]] | None = None,
) -> AsyncIterator[Watched]:
    """Run a new monitor (or run `reuse` again, as a supervisor restart does) during the block."""
    caplog.set_level(logging.INFO, logger="actors.breaker_monitor")
    monitor, commands = reuse or make_monitor(breakers, handler, buffer)
    async with anyio.create_task_group() as tasks:
        await tasks.start(monitor.run)
        yield Watched(monitor, commands, caplog)
        tasks.cancel_scope.cancel()


async def test_open_pauses_half_open_resumes_and_closed_stays_resumed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The handler's breaker opening pauses the consumer; recovery time resumes it for a trial."""
    clock = ManualClock()
    handler = CircuitBreaker("handler", CONFIG, clock)
    async with watching([handler], caplog, handler="handler") as watched:
        open_breaker(handler)
        assert await watched.next_command() == PausePartitions("handler")

        clock.now += CONFIG.recovery_timeout_s
        assert await watched.next_command() == ResumePartitions("handler")

        handler.call(succeed)
        await eventually(lambda: watched.transitions()[-1:] == [("half_open", "closed")])
        with pytest.raises(anyio.WouldBlock):
            watched.commands.receive_nowait()
        assert not watched.monitor.paused


async def test_a_failed_trial_pauses_the_consumer_again(caplog: pytest.LogCaptureFixture) -> None:
    """A half-open trial that fails reopens the breaker, and the consumer is paused again."""
    clock = ManualClock()
    handler = CircuitBreaker("handler", CONFIG, clock)
    async with watching([handler], caplog, handler="handler") as watched:
        open_breaker(handler)
        assert await watched.next_command() == PausePartitions("handler")
        clock.now += CONFIG.recovery_timeout_s
        assert await watched.next_command() == ResumePartitions("handler")

        with pytest.raises(PipelineConnectionError):
            handler.call(fail)
        assert await watched.next_command() == PausePartitions("handler")
        assert watched.monitor.paused


async def test_every_transition_is_a_structured_log_event(caplog: pytest.LogCaptureFixture) -> None:
    """Each transition is logged once with event, breaker, from and to fields, in order."""
    clock = ManualClock()
    breaker = CircuitBreaker("onelake", CONFIG, clock)
    async with watching([breaker], caplog) as watched:
        open_breaker(breaker)
        clock.now += CONFIG.recovery_timeout_s
        await eventually(lambda: len(watched.transitions()) == 2)
        breaker.call(succeed)
        await eventually(lambda: len(watched.transitions()) == 3)

        assert watched.transitions("onelake") == [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ]
        opened = next(r for r in caplog.records if r.__dict__.get("to") == "open")
        assert opened.name == "actors.breaker_monitor"
        assert opened.levelno == logging.WARNING


async def test_transitions_from_other_threads_arrive_complete_and_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Breakers driven by worker threads: every transition reaches the monitor, each in order."""
    cycles = 40
    clocks = {name: ManualClock() for name in ("handler", "kusto")}
    breakers = [CircuitBreaker(name, CONFIG, clock) for name, clock in clocks.items()]

    def cycle_through_states(breaker: CircuitBreaker, clock: ManualClock) -> None:
        for _ in range(cycles):
            open_breaker(breaker)
            clock.now += CONFIG.recovery_timeout_s
            breaker.call(succeed)

    async with watching(breakers, caplog, handler="handler", buffer=2 * cycles) as watched:
        workers = [
            threading.Thread(target=cycle_through_states, args=(breaker, clocks[breaker.name]))
            for breaker in breakers
        ]
        for worker in workers:
            worker.start()
        await eventually(lambda: len(watched.transitions()) == 3 * cycles * len(breakers))
        for worker in workers:
            worker.join()

        one_cycle = [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
        for breaker in breakers:
            assert watched.transitions(breaker.name) == one_cycle * cycles
        commands = [watched.commands.receive_nowait() for _ in range(2 * cycles)]
        assert commands == [PausePartitions("handler"), ResumePartitions("handler")] * cycles


async def test_a_restarted_monitor_hears_each_transition_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stopping removes the listener, so a monitor run again never hears a transition twice."""
    clock = ManualClock()
    handler = CircuitBreaker("handler", CONFIG, clock)
    monitor = make_monitor([handler], "handler")
    for _ in range(2):
        async with watching([handler], caplog, reuse=monitor):
            pass
    async with watching([handler], caplog, reuse=monitor) as watched:
        open_breaker(handler)
        assert await watched.next_command() == PausePartitions("handler")
        await anyio.sleep(10 * TICK)

        assert watched.transitions() == [("closed", "open")]
        with pytest.raises(anyio.WouldBlock):
            watched.commands.receive_nowait()


async def test_a_monitor_started_while_the_breaker_is_open_pauses_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A transition missed while no monitor ran still steers the consumer on the next start."""
    clock = ManualClock()
    handler = CircuitBreaker("handler", CONFIG, clock)
    open_breaker(handler)
    async with watching([handler], caplog, handler="handler") as watched:
        assert await watched.next_command() == PausePartitions("handler")
        assert watched.monitor.stats()["handler"].state is CircuitState.OPEN


async def test_stats_hold_each_breakers_state_counters_and_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """stats() has every breaker's state, counters and the wait before its next trial."""
    clock = ManualClock()
    kafka = CircuitBreaker("kafka", CONFIG, clock)
    kusto = CircuitBreaker("kusto", CONFIG, clock)
    async with watching([kafka, kusto], caplog) as watched:
        open_breaker(kusto)
        kafka.call(succeed)
        clock.now += CONFIG.recovery_timeout_s / 3
        await eventually(lambda: watched.monitor.stats()["kafka"].stats.successes == 1)

        stats = watched.monitor.stats()
        assert stats["kusto"].state is CircuitState.OPEN
        assert stats["kusto"].stats.failures == CONFIG.failure_threshold
        assert stats["kusto"].retry_after == pytest.approx(2 * CONFIG.recovery_timeout_s / 3)
        assert stats["kafka"].state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("breaker_names", "options", "complaint"),
    [
        (["kafka"], {"handler_breaker_name": "handler"}, "not among the monitored"),
        (["kafka", "kafka"], {}, "two breakers are named"),
        (["kafka"], {"tick_interval": 0.0}, "tick_interval"),
    ],
)
def test_wiring_mistakes_are_rejected_at_construction(
    breaker_names: list[str], options: dict[str, Any], complaint: str
) -> None:
    """An unmonitored handler breaker, a duplicate name or a zero tick is refused up front."""
    send, receive = anyio.create_memory_object_stream[PartitionCommand](1)
    breakers = [CircuitBreaker(name) for name in breaker_names]
    with send, receive, pytest.raises(ValueError, match=complaint):
        BreakerMonitorActor(breakers, send, **options)


async def test_a_breaker_watched_later_is_logged_and_reported_without_steering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A breaker made after the monitor (a new download host's) joins with `watch`: its
    transitions are logged and its state reported, and it sends the consumer no command
    (the consumer pauses on the refusal itself); watching it twice changes nothing."""
    handler = CircuitBreaker("handler", CONFIG)
    async with watching([handler], caplog, handler="handler") as watched:
        host = CircuitBreaker("download:files.example", CONFIG)
        watched.monitor.watch(host)
        watched.monitor.watch(host)
        open_breaker(host)
        await eventually(
            lambda: watched.transitions("download:files.example") == [("closed", "open")]
        )
        assert watched.monitor.stats()["download:files.example"].state is CircuitState.OPEN
        assert not watched.monitor.paused
        with pytest.raises(anyio.WouldBlock):
            watched.commands.receive_nowait()


def test_a_breaker_watched_before_the_monitor_runs_is_reported() -> None:
    """`watch` before `run` records the breaker, so its state is reported at once."""
    monitor, _ = make_monitor([])
    breaker = CircuitBreaker("store:account/container", CONFIG)
    monitor.watch(breaker)
    assert set(monitor.stats()) == {"store:account/container"}
