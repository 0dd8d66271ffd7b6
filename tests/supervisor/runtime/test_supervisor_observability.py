"""Stats snapshots, events and structured log records of a Supervisor."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import anyio
import pytest
from supervision_harness import EventLog, Puppet, virtual_time_backend

from core.errors import CircuitOpenError, TransientError
from core.types import ErrorCategory
from supervisor import Backoff, ChildSpec, EventKind, Supervisor, SupervisorEvent

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio in virtual time."""
    return virtual_time_backend()


async def _two_crashes(log: EventLog | None = None) -> tuple[Supervisor, Puppet]:
    """Run a supervisor whose child crashes TRANSIENT then CIRCUIT_OPEN, then stop it."""
    puppet = Puppet("consumer")
    sup = Supervisor(
        [ChildSpec("consumer", factory=puppet.factory)],
        name="root",
        backoff=Backoff(base=1.0, jitter=False),
        on_event=log.append if log else None,
    )
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        await anyio.sleep(1.0)
        puppet.crash(TransientError("lost connection"))
        await anyio.sleep(5.0)
        puppet.crash(CircuitOpenError("broker", 4.0))
        await anyio.sleep(10.0)
        sup.stop()
    return sup, puppet


async def test_stats_count_starts_restarts_and_exits_by_category() -> None:
    """The snapshot holds per-child starts, restarts, exits by label and the last exit."""
    sup, _ = await _two_crashes()
    stats = sup.stats()
    child = stats.children["consumer"]
    assert (stats.name, stats.escalations) == ("root", 0)
    assert (child.starts, child.restarts, child.running) == (3, 2, False)
    assert dict(child.exits) == {"transient": 1, "circuit_open": 1, "stopped": 1}
    assert (child.last_exit, child.last_exit_at) == ("stopped", 1.0 + 5.0 + 10.0)


async def test_a_snapshot_is_frozen_and_reports_running_children() -> None:
    """A snapshot taken while running shows the child running and cannot be changed."""
    puppet = Puppet("p")
    sup = Supervisor([ChildSpec("p", factory=puppet.factory)])
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        snapshot = sup.stats()
        sup.stop()
    assert snapshot.children["p"].running
    assert not sup.stats().children["p"].running
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.children["p"].starts = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.children["p"].exits["x"] = 1  # type: ignore[index]


async def test_events_carry_category_delay_and_restart_count() -> None:
    """Each event names supervisor and child; exits carry category, restarts delay and count."""
    log = EventLog()
    await _two_crashes(log)
    summary = [(e.kind, e.category, e.delay, e.restart_count) for e in log.events]
    assert summary == [
        (EventKind.STARTED, None, None, 0),
        (EventKind.EXITED, ErrorCategory.TRANSIENT, None, 0),
        (EventKind.RESTARTING, None, 1.0, 1),
        (EventKind.STARTED, None, None, 1),
        (EventKind.EXITED, ErrorCategory.CIRCUIT_OPEN, None, 1),
        (EventKind.RESTARTING, None, 4.0, 2),
        (EventKind.STARTED, None, None, 2),
        (EventKind.STOPPED, None, None, 2),
    ]
    assert {(e.supervisor, e.child) for e in log.events} == {("root", "consumer")}
    assert isinstance(log.of(EventKind.EXITED)[0].error, TransientError)


async def test_every_event_is_a_structured_log_record(caplog: pytest.LogCaptureFixture) -> None:
    """Log records of logger 'supervisor' carry event, child, category, delay, restart_count."""
    caplog.set_level(logging.INFO, logger="supervisor")
    await _two_crashes()
    records = [r for r in caplog.records if r.name == "supervisor" and r.event.startswith("child_")]
    fields = [(r.event, r.child, r.category, r.delay, r.restart_count) for r in records]
    assert fields == [
        ("child_started", "consumer", None, None, 0),
        ("child_exited", "consumer", "transient", None, 0),
        ("child_restarting", "consumer", None, 1.0, 1),
        ("child_started", "consumer", None, None, 1),
        ("child_exited", "consumer", "circuit_open", None, 1),
        ("child_restarting", "consumer", None, 4.0, 2),
        ("child_started", "consumer", None, None, 2),
        ("child_stopped", "consumer", None, None, 2),
    ]
    exited = records[1]
    assert exited.levelno == logging.WARNING
    assert exited.exc_info is not None
    assert (
        exited.getMessage()
        == "child 'consumer' exited (transient): TransientError: lost connection"
    )


async def test_a_failing_event_hook_is_logged_and_supervision_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An on_event callback that raises is logged; the supervisor keeps working."""

    def broken(event: SupervisorEvent) -> None:
        raise RuntimeError("metrics backend gone")

    puppet = Puppet("p")
    sup = Supervisor([ChildSpec("p", factory=puppet.factory)], on_event=broken)
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        sup.stop()
    failures = [r for r in caplog.records if getattr(r, "event", "") == "supervisor_hook_failed"]
    assert len(failures) == 2  # started, stopped
    assert sup.stats().children["p"].exits == {"stopped": 1}


def test_event_labels_name_the_exit() -> None:
    """label is 'returned', 'stopped' or the category's value."""
    base = {"supervisor": "s", "child": "c", "at": 0.0}
    labels = [
        SupervisorEvent(EventKind.EXITED, **base).label,
        SupervisorEvent(EventKind.STOPPED, **base).label,
        SupervisorEvent(EventKind.EXITED, category=ErrorCategory.AUTH, **base).label,
    ]
    assert labels == ["returned", "stopped", "auth"]
