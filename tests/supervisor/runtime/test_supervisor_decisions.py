"""Each row of the supervision decision table, on a real Supervisor in virtual time."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus
from supervision_harness import EventLog, Puppet, virtual_time_backend

from core.errors import (
    AuthError,
    CircuitOpenError,
    ConfigurationError,
    PermanentError,
    TransientError,
)
from core.types import ErrorCategory
from supervisor import (
    Backoff,
    ChildSpec,
    EscalationError,
    EventKind,
    Restart,
    Supervisor,
)

pytestmark = pytest.mark.anyio

LADDER = Backoff(base=1.0, max=8.0, factor=2.0, jitter=False)


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio in virtual time."""
    return virtual_time_backend()


def _crashing(*errors: BaseException | None) -> Any:
    """A child function whose n-th run raises errors[n] (returns on None), then idles."""
    remaining = list(errors)

    async def run(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await anyio.sleep(1.0)
        if remaining:
            error = remaining.pop(0)
            if error is not None:
                raise error
            return
        await anyio.sleep_forever()

    return run


async def _run_until(sup: Supervisor, seconds: float) -> None:
    """Run `sup` for `seconds` of virtual time, then stop it."""
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        await anyio.sleep(seconds)
        sup.stop()


async def test_cancellation_is_not_a_failure() -> None:
    """Cancelling the supervisor's task stops its children without restarts or escalation."""
    log = EventLog()
    puppets = [Puppet("a"), Puppet("b")]
    sup = Supervisor([ChildSpec(p.name, factory=p.factory) for p in puppets], on_event=log.append)
    with anyio.move_on_after(5.0):
        await sup.run()
    assert log.steps() == [
        ("started", "a"),
        ("started", "b"),
        ("stopped", "b"),
        ("stopped", "a"),
    ]
    stats = sup.stats()
    assert stats.escalations == 0
    assert {name: (c.restarts, dict(c.exits)) for name, c in stats.children.items()} == {
        "a": (0, {"stopped": 1}),
        "b": (0, {"stopped": 1}),
    }
    assert [p.alive for p in puppets] == [0, 0]


@pytest.mark.parametrize(
    ("policy", "restarted"),
    [(Restart.ALWAYS, True), (Restart.ON_FAILURE, False), (Restart.NEVER, False)],
)
async def test_a_normal_return_restarts_only_always_children(
    policy: Restart, restarted: bool
) -> None:
    """A child that returns is started again only under Restart.ALWAYS."""
    log = EventLog()
    sup = Supervisor(
        [ChildSpec("job", _crashing(None), restart=policy)], backoff=LADDER, on_event=log.append
    )
    await _run_until(sup, 10.0)
    assert (("restarting", "job") in log.steps()) is restarted
    assert sup.stats().children["job"].starts == (2 if restarted else 1)


async def test_run_returns_once_every_child_finished_for_good() -> None:
    """When no child is left to restart, run() returns by itself."""
    sup = Supervisor(
        [
            ChildSpec("once", _crashing(None), restart=Restart.NEVER),
            ChildSpec(
                "until_done", _crashing(TransientError("x"), None), restart=Restart.ON_FAILURE
            ),
        ],
        backoff=LADDER,
    )
    await sup.run()
    assert {n: c.exits["returned"] for n, c in sup.stats().children.items()} == {
        "once": 1,
        "until_done": 1,
    }


@pytest.mark.parametrize("error", [TransientError("flaky"), RuntimeError("unclassified")])
async def test_transient_and_unknown_restart_after_a_growing_backoff(error: Exception) -> None:
    """TRANSIENT and UNKNOWN failures restart after base, then base*factor, ... seconds."""
    log = EventLog()
    sup = Supervisor(
        [ChildSpec("c", _crashing(error, error, error))],
        backoff=LADDER,
        max_restarts=10,
        on_event=log.append,
    )
    await _run_until(sup, 30.0)
    exits = [e.at for e in log.of(EventKind.EXITED)]
    starts = [e.at for e in log.of(EventKind.STARTED)][1:]
    assert [start - exit for exit, start in zip(exits, starts, strict=True)] == [1.0, 2.0, 4.0]
    assert [e.delay for e in log.of(EventKind.RESTARTING)] == [1.0, 2.0, 4.0]
    assert [e.restart_count for e in log.of(EventKind.RESTARTING)] == [1, 2, 3]


async def test_too_many_restarts_within_the_period_escalate() -> None:
    """The restart that would exceed max_restarts within period escalates instead."""
    error = TransientError("down")
    sup = Supervisor(
        [ChildSpec("c", _crashing(error, error, error))],
        backoff=Backoff(base=0.0),
        max_restarts=2,
        period=10.0,
    )
    with pytest.raises(EscalationError) as caught:
        await sup.run()
    assert (caught.value.child, caught.value.category) == ("c", ErrorCategory.TRANSIENT)
    assert caught.value.__cause__ is error
    assert "more than 2 restarts in 10s" in str(caught.value)
    assert sup.stats().children["c"].restarts == 2


async def test_restarts_spread_beyond_the_period_do_not_escalate() -> None:
    """Failures further apart than the period never add up to an escalation."""
    error = TransientError("blip")
    sup = Supervisor(
        [ChildSpec("c", _crashing(*[error] * 5))],
        backoff=Backoff(base=5.0, jitter=False, factor=1.0),
        max_restarts=1,
        period=5.0,
    )
    await _run_until(sup, 60.0)
    assert sup.stats().children["c"].restarts == 5
    assert sup.stats().escalations == 0


async def test_auth_failure_asks_for_a_fresh_token_before_restarting() -> None:
    """AUTH calls on_auth_failure with the child and its error, then restarts; it counts."""
    log = EventLog()
    calls: list[tuple[str, str, float]] = []
    error = AuthError("token expired")

    async def refresh(child: str, exc: BaseException) -> None:
        calls.append((child, str(exc), anyio.current_time()))
        await anyio.sleep(0.5)

    sup = Supervisor(
        [ChildSpec("consumer", _crashing(error, error))],
        backoff=LADDER,
        max_restarts=1,
        on_auth_failure=refresh,
        on_event=log.append,
    )
    with pytest.raises(EscalationError) as caught:
        await sup.run()
    restart_at = log.of(EventKind.STARTED)[1].at
    assert [(child, text) for child, text, _ in calls] == [("consumer", "token expired")]
    assert calls[0][2] + 0.5 + 1.0 == restart_at  # refresh, then backoff, then start
    assert caught.value.category is ErrorCategory.AUTH


async def test_a_failing_auth_hook_is_noted_and_the_restart_goes_ahead() -> None:
    """A sync hook that raises is logged and noted on the child's error; the child restarts."""
    error = AuthError("rejected")

    def refresh(child: str, exc: BaseException) -> None:
        raise ConnectionRefusedError("identity provider down")

    sup = Supervisor([ChildSpec("c", _crashing(error))], backoff=LADDER, on_auth_failure=refresh)
    await _run_until(sup, 5.0)
    assert sup.stats().children["c"].starts == 2
    assert error.__notes__ == [
        "on_auth_failure hook failed: ConnectionRefusedError: identity provider down"
    ]


async def test_circuit_open_waits_for_retry_after_and_does_not_count() -> None:
    """CIRCUIT_OPEN restarts after the breaker's retry_after and never uses up the intensity."""
    log = EventLog()
    errors = [CircuitOpenError("db", 7.0) for _ in range(4)]
    sup = Supervisor(
        [ChildSpec("writer", _crashing(*errors))],
        backoff=LADDER,
        max_restarts=0,
        on_event=log.append,
    )
    await _run_until(sup, 60.0)
    assert [e.delay for e in log.of(EventKind.RESTARTING)] == [7.0, 7.0, 7.0, 8.0]
    assert sup.stats().escalations == 0
    assert sup.stats().children["writer"].exits["circuit_open"] == 4


async def test_permanent_escalates_at_once_and_stops_the_siblings() -> None:
    """PERMANENT escalates on the first failure, after stopping the others last-started first."""
    log = EventLog()
    error = ConfigurationError("no such topic")
    puppets = [Puppet("first"), Puppet("last")]
    sup = Supervisor(
        [
            *[ChildSpec(p.name, factory=p.factory) for p in puppets],
            ChildSpec("broken", _crashing(error), restart=Restart.ALWAYS),
        ],
        name="root",
        on_event=log.append,
    )
    with pytest.raises(EscalationError) as caught:
        await sup.run()
    assert log.steps()[3:] == [
        ("exited", "broken"),
        ("stopped", "last"),
        ("stopped", "first"),
        ("escalated", "broken"),
    ]
    assert str(caught.value) == (
        "supervisor 'root': child 'broken' failed PERMANENT (permanent failure): "
        "ConfigurationError: no such topic"
    )
    assert caught.value.__cause__ is error
    assert sup.stats().escalations == 1
    assert [p.alive for p in puppets] == [0, 0]


async def test_an_exception_group_is_judged_by_its_most_severe_member() -> None:
    """A group holding a transient and a permanent failure escalates as PERMANENT."""
    group = ExceptionGroup("both", [TransientError("t"), PermanentError("p")])
    sup = Supervisor([ChildSpec("c", _crashing(group))], max_restarts=10)
    with pytest.raises(EscalationError) as caught:
        await sup.run()
    assert caught.value.category is ErrorCategory.PERMANENT
    assert caught.value.__cause__ is group
