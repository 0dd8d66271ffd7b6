"""Strategies and restart policies at work: who is stopped, who restarts, in what order."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from supervision_harness import EventLog, Puppet, virtual_time_backend

from core.errors import TransientError
from supervisor import Backoff, ChildSpec, EventKind, Restart, Strategy, Supervisor

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio in virtual time."""
    return virtual_time_backend()


async def _crash_and_watch(
    strategy: Strategy,
    crash: str,
    policies: dict[str, Restart] | None = None,
) -> tuple[list[tuple[str, str]], dict[str, Puppet]]:
    """Start a, b, c, d; crash one with a transient error; return the events after the crash."""
    policies = policies or {}
    puppets = {name: Puppet(name) for name in "abcd"}
    log = EventLog()
    sup = Supervisor(
        [
            ChildSpec(p.name, factory=p.factory, restart=policies.get(p.name, Restart.ALWAYS))
            for p in puppets.values()
        ],
        strategy=strategy,
        backoff=Backoff(base=0.5, jitter=False),
        on_event=log.append,
    )
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        puppets[crash].crash(TransientError("boom"))
        await anyio.sleep(10.0)
        sup.stop()
    return log.steps()[4:], puppets


async def test_one_for_one_restarts_only_the_failed_child() -> None:
    """ONE_FOR_ONE leaves every sibling running."""
    steps, puppets = await _crash_and_watch(Strategy.ONE_FOR_ONE, "b")
    assert steps[:3] == [("exited", "b"), ("restarting", "b"), ("started", "b")]
    assert [p.starts for p in puppets.values()] == [1, 2, 1, 1]


async def test_one_for_all_stops_all_in_reverse_and_restarts_all_in_order() -> None:
    """ONE_FOR_ALL stops d, c, a (reverse start order), then starts a, b, c, d."""
    steps, puppets = await _crash_and_watch(Strategy.ONE_FOR_ALL, "b")
    assert steps[:13] == [
        ("exited", "b"),
        ("stopped", "d"),
        ("stopped", "c"),
        ("stopped", "a"),
        ("restarting", "a"),
        ("restarting", "b"),
        ("restarting", "c"),
        ("restarting", "d"),
        ("started", "a"),
        ("started", "b"),
        ("started", "c"),
        ("started", "d"),
        ("stopped", "d"),
    ]
    assert [p.starts for p in puppets.values()] == [2, 2, 2, 2]


async def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    """REST_FOR_ONE stops d then c, and restarts b, c, d in order; a is untouched."""
    steps, puppets = await _crash_and_watch(Strategy.REST_FOR_ONE, "b")
    assert steps[:9] == [
        ("exited", "b"),
        ("stopped", "d"),
        ("stopped", "c"),
        ("restarting", "b"),
        ("restarting", "c"),
        ("restarting", "d"),
        ("started", "b"),
        ("started", "c"),
        ("started", "d"),
    ]
    assert [p.starts for p in puppets.values()] == [1, 2, 2, 2]


async def test_a_never_sibling_stopped_by_the_strategy_is_not_restarted() -> None:
    """Under ONE_FOR_ALL a running NEVER sibling is stopped and stays stopped, as in OTP."""
    steps, puppets = await _crash_and_watch(
        Strategy.ONE_FOR_ALL, "a", policies={"c": Restart.NEVER}
    )
    assert ("restarting", "c") not in steps
    assert [p.starts for p in puppets.values()] == [2, 2, 1, 2]


async def test_a_never_child_that_fails_is_not_restarted_and_siblings_stay() -> None:
    """A NEVER child's failure finishes it without touching siblings, even under ONE_FOR_ALL."""
    steps, puppets = await _crash_and_watch(
        Strategy.ONE_FOR_ALL, "b", policies={"b": Restart.NEVER}
    )
    assert steps[:2] == [("exited", "b"), ("stopped", "d")]  # the next stop is sup.stop()
    assert [p.starts for p in puppets.values()] == [1, 1, 1, 1]


async def test_on_failure_child_is_restarted_after_a_crash_but_not_after_finishing() -> None:
    """ON_FAILURE restarts a crash, and a later normal return finishes the child for good."""
    puppet = Puppet("job")
    log = EventLog()
    sup = Supervisor(
        [ChildSpec("job", factory=puppet.factory, restart=Restart.ON_FAILURE)],
        backoff=Backoff(base=0.0),
        on_event=log.append,
    )
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        puppet.crash(TransientError("once"))
        await anyio.sleep(1.0)
        puppet.finish()
    assert log.steps(EventKind.EXITED, EventKind.RESTARTING, EventKind.STARTED) == [
        ("started", "job"),
        ("exited", "job"),
        ("restarting", "job"),
        ("started", "job"),
        ("exited", "job"),
    ]
