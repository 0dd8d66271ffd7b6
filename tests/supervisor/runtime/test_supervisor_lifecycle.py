"""Starting in order, startup failures, the stop protocol, shutdown timeouts, nesting, no leaks."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus
from supervision_harness import EventLog, Puppet, virtual_time_backend

from core.errors import ConfigurationError, TransientError
from core.types import ErrorCategory
from supervisor import (
    Backoff,
    ChildSpec,
    EscalationError,
    EventKind,
    Restart,
    Strategy,
    Supervisor,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio in virtual time."""
    return virtual_time_backend()


def _specs(*puppets: Puppet, timeout: float = 5.0) -> list[ChildSpec]:
    return [ChildSpec(p.name, factory=p.factory, shutdown_timeout=timeout) for p in puppets]


async def test_children_start_one_after_another_and_the_supervisor_reports_started_last() -> None:
    """Each child is started only after the previous one reported started; then the supervisor."""
    trail: list[str] = []

    def slow_starter(name: str) -> Any:
        async def run(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            trail.append(f"{name} begins")
            await anyio.sleep(1.0)
            trail.append(f"{name} ready")
            task_status.started()
            await anyio.sleep_forever()

        return run

    sup = Supervisor([ChildSpec(n, slow_starter(n)) for n in "abc"])
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        trail.append("supervisor ready")
        group.cancel_scope.cancel()
    assert trail == [
        "a begins",
        "a ready",
        "b begins",
        "b ready",
        "c begins",
        "c ready",
        "supervisor ready",
    ]


async def test_a_transient_startup_failure_is_retried_and_later_children_wait() -> None:
    """The 2nd child failing before it started is restarted after backoff; the 3rd waits for it."""
    log = EventLog()
    a, b, c = Puppet("a"), Puppet("b", fail_starts=[TransientError("not yet")]), Puppet("c")
    sup = Supervisor(_specs(a, b, c), backoff=Backoff(base=2.0, jitter=False), on_event=log.append)
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        ready_at = anyio.current_time()
        sup.stop()
    assert log.steps()[:5] == [
        ("started", "a"),
        ("exited", "b"),
        ("restarting", "b"),
        ("started", "b"),
        ("started", "c"),
    ]
    assert ready_at == 2.0
    assert [p.starts for p in (a, b, c)] == [1, 1, 1]


async def test_a_permanent_startup_failure_escalates_and_stops_the_started_children() -> None:
    """The 3rd child failing PERMANENT at startup stops the 2nd then the 1st, and escalates."""
    log = EventLog()
    puppets = [Puppet("a"), Puppet("b"), Puppet("c", fail_starts=[ConfigurationError("bad")])]
    sup = Supervisor(_specs(*puppets), on_event=log.append)
    with pytest.raises(EscalationError) as caught:
        await sup.run()
    assert log.steps() == [
        ("started", "a"),
        ("started", "b"),
        ("exited", "c"),
        ("stopped", "b"),
        ("stopped", "a"),
        ("escalated", "c"),
    ]
    assert caught.value.child == "c"
    assert [p.alive for p in puppets] == [0, 0, 0]


async def test_stop_calls_each_childs_stop_in_reverse_order_and_returns() -> None:
    """stop() asks children with a stop() method to finish, last started first, then returns."""
    log = EventLog()
    puppets = [Puppet(n, graceful=True) for n in "abc"]
    sup = Supervisor(_specs(*puppets), on_event=log.append)
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        sup.stop()
    assert log.steps(EventKind.STOPPED) == [("stopped", "c"), ("stopped", "b"), ("stopped", "a")]
    assert [(p.stop_calls, p.cancelled, p.alive) for p in puppets] == [(1, 0, 0)] * 3


async def test_a_child_ignoring_stop_is_cancelled_after_its_shutdown_timeout() -> None:
    """A child whose stop() does nothing is cancelled exactly shutdown_timeout seconds later."""
    log = EventLog()
    stubborn = Puppet("stubborn", graceful=True, ignore_stop=True)
    sup = Supervisor(_specs(stubborn, timeout=3.0), on_event=log.append)
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        stop_asked_at = anyio.current_time()
        sup.stop()
    assert log.of(EventKind.STOPPED)[0].at - stop_asked_at == 3.0
    assert (stubborn.stop_calls, stubborn.cancelled, stubborn.alive) == (1, 1, 0)


async def test_a_child_without_stop_is_cancelled_at_once() -> None:
    """Without a stop() method, stopping means cancelling right away."""
    plain = Puppet("plain")
    sup = Supervisor(_specs(plain, timeout=30.0))
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        stop_asked_at = anyio.current_time()
        sup.stop()
    assert anyio.current_time() == stop_asked_at
    assert (plain.cancelled, plain.alive) == (1, 0)


async def test_cancelling_the_supervisor_stops_children_gracefully_and_propagates() -> None:
    """An outer cancellation still runs each child's stop() in reverse order before ending."""
    log = EventLog()
    puppets = [Puppet(n, graceful=True) for n in "ab"]
    sup = Supervisor(_specs(*puppets), on_event=log.append)
    with anyio.move_on_after(1.0) as scope:
        await sup.run()
    assert scope.cancelled_caught
    assert log.steps(EventKind.STOPPED) == [("stopped", "b"), ("stopped", "a")]
    assert [(p.stop_calls, p.cancelled) for p in puppets] == [(1, 0), (1, 0)]


async def test_errors_raised_while_stopping_are_raised_by_run_after_stop() -> None:
    """A child raising during a requested stop makes run() raise them as an ExceptionGroup."""

    async def messy(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            raise OSError("flush failed")

    sup = Supervisor([ChildSpec("messy", messy), ChildSpec("tidy", factory=Puppet("tidy").factory)])
    stop_errors = pytest.RaisesGroup(pytest.RaisesExc(OSError, match="flush failed"))
    with pytest.RaisesGroup(stop_errors):  # the outer group is the test's task group
        async with anyio.create_task_group() as group:
            await group.start(sup.run)
            sup.stop()
    assert sup.stats().children["messy"].exits == {"stopped": 1}


async def test_errors_raised_by_siblings_during_escalation_are_noted_on_it() -> None:
    """A sibling failing while escalation stops it appears as a note on the EscalationError."""

    async def messy(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            raise OSError("flush failed")

    broken = Puppet("broken", fail_starts=[ConfigurationError("bad")])
    sup = Supervisor([ChildSpec("messy", messy), ChildSpec("broken", factory=broken.factory)])
    with pytest.raises(EscalationError) as caught:
        await sup.run()
    assert caught.value.__notes__ == ["while stopping child 'messy': OSError: flush failed"]


async def test_each_start_builds_a_fresh_actor_from_the_factory() -> None:
    """A factory child gets a new object on every restart."""
    built: list[object] = []
    puppet = Puppet("p")

    def factory() -> Any:
        actor = puppet.factory()
        built.append(actor)
        return actor

    sup = Supervisor([ChildSpec("p", factory=factory)], backoff=Backoff(base=0.0))
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        puppet.crash(TransientError("x"))
        await anyio.sleep(1.0)
        sup.stop()
    assert len(built) == 2
    assert built[0] is not built[1]


async def test_a_nested_supervisor_escalating_permanent_escalates_the_parent() -> None:
    """A PERMANENT escalation of a child supervisor escalates its parent, naming both."""
    inner = Supervisor(
        [ChildSpec("db", factory=Puppet("db", fail_starts=[ConfigurationError("no dsn")]).factory)],
        name="storage",
    )
    root = Supervisor([ChildSpec("storage", inner.run, shutdown_timeout=math.inf)], name="root")
    with pytest.raises(EscalationError) as caught:
        await root.run()
    assert str(caught.value) == (
        "supervisor 'root': child 'storage' failed PERMANENT (permanent failure): "
        "EscalationError: supervisor 'storage': child 'db' failed PERMANENT "
        "(permanent failure): ConfigurationError: no dsn"
    )
    assert isinstance(caught.value.__cause__, EscalationError)


async def test_a_nested_supervisor_out_of_restarts_is_restarted_by_its_parent() -> None:
    """A child supervisor that exhausted its intensity on transient failures is restarted."""
    log = EventLog()
    flaky = Puppet("flaky", fail_starts=[TransientError("down")] * 2)
    inner = Supervisor([ChildSpec("flaky", factory=flaky.factory)], name="inner", max_restarts=0)
    root = Supervisor(
        [ChildSpec("inner", inner.run, shutdown_timeout=math.inf)],
        name="root",
        backoff=Backoff(base=1.0, jitter=False),
        on_event=log.append,
    )
    async with anyio.create_task_group() as group:
        await group.start(root.run)
        root.stop()
    exits = log.of(EventKind.EXITED)
    assert [(e.child, e.category) for e in exits] == [("inner", ErrorCategory.TRANSIENT)] * 2
    assert (inner.stats().escalations, flaky.starts, flaky.alive) == (2, 1, 0)


async def test_stopping_the_parent_stops_a_nested_supervisor_through_its_stop() -> None:
    """The parent's stop reaches grandchildren gracefully through the nested supervisor's stop()."""
    leaves = [Puppet(n, graceful=True) for n in "xy"]
    inner = Supervisor(_specs(*leaves), name="inner")
    root = Supervisor([ChildSpec("inner", inner.run, shutdown_timeout=math.inf)])
    async with anyio.create_task_group() as group:
        await group.start(root.run)
        root.stop()
    assert [(p.stop_calls, p.cancelled, p.alive) for p in leaves] == [(1, 0, 0), (1, 0, 0)]
    assert root.stats().children["inner"].exits == {"stopped": 1}


async def test_a_supervisor_cannot_run_twice_at_once() -> None:
    """A second concurrent run() is refused."""
    sup = Supervisor([ChildSpec("p", factory=Puppet("p").factory)])
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        with pytest.raises(RuntimeError, match="already running"):
            await sup.run()
        sup.stop()


async def test_an_empty_supervisor_starts_and_returns() -> None:
    """With no children there is nothing to supervise: started is reported and run returns."""
    async with anyio.create_task_group() as group:
        await group.start(Supervisor([]).run)
    assert anyio.current_time() >= 0.0


def test_invalid_specifications_are_refused() -> None:
    """Duplicate names, both or neither of run/factory, and bad numbers raise ValueError."""
    run = Puppet("p").factory().run
    invalid = [
        lambda: Supervisor([ChildSpec("a", run), ChildSpec("a", run)]),
        lambda: ChildSpec("a"),
        lambda: ChildSpec("a", run, factory=Puppet("p").factory),
        lambda: ChildSpec("", run),
        lambda: ChildSpec("a", run, shutdown_timeout=-1.0),
        lambda: Supervisor([], max_restarts=-1),
        lambda: Supervisor([], period=0.0),
        lambda: Supervisor([], stable_after=-1.0),
    ]
    for make in invalid:
        with pytest.raises(ValueError):
            make()
    assert ChildSpec("a", run, restart=Restart.NEVER).restart is Restart.NEVER


async def test_a_startup_failure_under_one_for_all_restarts_the_started_children_too() -> None:
    """The 3rd child failing at startup under ONE_FOR_ALL stops b, a and restarts a, b, c."""
    log = EventLog()
    puppets = [Puppet("a"), Puppet("b"), Puppet("c", fail_starts=[TransientError("not yet")])]
    sup = Supervisor(
        _specs(*puppets),
        strategy=Strategy.ONE_FOR_ALL,
        backoff=Backoff(base=1.0, jitter=False),
        on_event=log.append,
    )
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        sup.stop()
    assert log.steps()[:11] == [
        ("started", "a"),
        ("started", "b"),
        ("exited", "c"),
        ("stopped", "b"),
        ("stopped", "a"),
        ("restarting", "a"),
        ("restarting", "b"),
        ("restarting", "c"),
        ("started", "a"),
        ("started", "b"),
        ("started", "c"),
    ]
    assert [p.starts for p in puppets] == [2, 2, 1]


async def test_delays_and_timestamps_come_from_the_injected_clock_and_sleep() -> None:
    """Injected clock= and sleep= time the restart waits and stamp the events."""
    now = 100.0
    slept: list[float] = []

    def clock() -> float:
        return now

    async def sleep(seconds: float) -> None:
        nonlocal now
        slept.append(seconds)
        now += seconds
        await anyio.lowlevel.checkpoint()

    runs = 0

    async def crashes_twice(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        nonlocal runs
        runs += 1
        task_status.started()
        if runs <= 2:
            raise TransientError("again")

    log = EventLog()
    sup = Supervisor(
        [ChildSpec("c", crashes_twice, restart=Restart.ON_FAILURE)],
        backoff=Backoff(base=1.0, jitter=False),
        clock=clock,
        sleep=sleep,
        on_event=log.append,
    )
    await sup.run()
    assert slept == [1.0, 2.0]
    assert [e.at for e in log.of(EventKind.STARTED)] == [100.0, 101.0, 103.0]


async def test_stop_during_a_restart_delay_cancels_the_pending_restart() -> None:
    """stop() while a child waits out a long backoff returns at once and starts nothing."""
    puppet = Puppet("p")
    sup = Supervisor([ChildSpec("p", factory=puppet.factory)], backoff=Backoff(base=60.0, max=60.0))
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        puppet.crash(TransientError("x"))
        await anyio.sleep(1.0)
        stop_asked_at = anyio.current_time()
        sup.stop()
    assert anyio.current_time() == stop_asked_at
    assert (puppet.starts, puppet.alive) == (1, 0)


async def test_a_never_child_failing_at_startup_lets_the_next_child_start() -> None:
    """A NEVER child that fails before starting is finished, and start-up goes on without it."""
    log = EventLog()
    once = Puppet("once", fail_starts=[TransientError("no")])
    after = Puppet("after")
    sup = Supervisor(
        [
            ChildSpec("once", factory=once.factory, restart=Restart.NEVER),
            ChildSpec("after", factory=after.factory),
        ],
        on_event=log.append,
    )
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        sup.stop()
    assert log.steps() == [("exited", "once"), ("started", "after"), ("stopped", "after")]


async def test_a_stop_method_that_raises_is_reported_and_the_child_cancelled() -> None:
    """If stop() itself raises, the child is cancelled at once and run() raises the error."""

    class BadStop:
        async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await anyio.sleep_forever()

        def stop(self) -> None:
            raise RuntimeError("cannot stop")

    sup = Supervisor([ChildSpec("bad", factory=BadStop, shutdown_timeout=30.0)])
    stop_errors = pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="cannot stop"))
    with pytest.RaisesGroup(stop_errors):  # the outer group is the test's task group
        async with anyio.create_task_group() as group:
            await group.start(sup.run)
            stop_asked_at = anyio.current_time()
            sup.stop()
    assert anyio.current_time() == stop_asked_at


async def test_reporting_started_twice_is_a_failure_of_the_child() -> None:
    """A child calling task_status.started() twice fails with RuntimeError (UNKNOWN)."""

    async def twice(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        task_status.started()

    log = EventLog()
    sup = Supervisor([ChildSpec("twice", twice, restart=Restart.NEVER)], on_event=log.append)
    await sup.run()
    exited = log.of(EventKind.EXITED)[0]
    assert (exited.category, str(exited.error)) == (
        ErrorCategory.UNKNOWN,
        "called 'started' twice on the same task status",
    )


def test_a_supervisor_shows_its_name_strategy_and_children() -> None:
    """repr names the supervisor and its strategy; children lists the specs in start order."""
    specs = [ChildSpec(n, factory=Puppet(n).factory) for n in "ab"]
    sup = Supervisor(specs, name="workers", strategy=Strategy.REST_FOR_ONE)
    assert repr(sup) == "Supervisor(name='workers', strategy=REST_FOR_ONE)"
    assert sup.children == tuple(specs)
