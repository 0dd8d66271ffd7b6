"""Counters behind `Supervisor.stats()`: a frozen snapshot, like anyio's `statistics()`.

The counters accumulate over the supervisor object's lifetime (a nested
supervisor that its parent restarts keeps counting), except `running`, which
is the state at the time of the snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from supervisor.runtime._events import EventKind, SupervisorEvent

__all__ = ["ChildStats", "StatsRecorder", "SupervisorStats"]


@dataclass(frozen=True, slots=True)
class ChildStats:
    """What happened to one child so far."""

    name: str
    running: bool
    """True while the child has reported started and not exited."""
    starts: int
    """Times it reported started."""
    restarts: int
    """Times a restart was scheduled for it."""
    exits: Mapping[str, int]
    """Exits by label: 'returned', 'stopped', or an error category's value."""
    last_exit: str | None
    last_exit_at: float | None


@dataclass(frozen=True, slots=True)
class SupervisorStats:
    """A snapshot of a supervisor and its children."""

    name: str
    escalations: int
    children: Mapping[str, ChildStats]
    """Per child, in start order."""


@dataclass(slots=True)
class _ChildCounters:
    running: bool = False
    starts: int = 0
    restarts: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    last_exit: str | None = None
    last_exit_at: float | None = None


class StatsRecorder:
    """Folds events into counters; `snapshot()` freezes them."""

    def __init__(self, name: str, children: Iterable[str]) -> None:
        self._name = name
        self._escalations = 0
        self._children = {child: _ChildCounters() for child in children}

    def record(self, event: SupervisorEvent) -> None:
        """Update the counters for `event`."""
        counters = self._children[event.child]
        if event.kind is EventKind.STARTED:
            counters.running = True
            counters.starts += 1
        elif event.kind is EventKind.RESTARTING:
            counters.restarts += 1
        elif event.kind is EventKind.ESCALATED:
            self._escalations += 1
        else:
            counters.running = False
            counters.exits[event.label] += 1
            counters.last_exit, counters.last_exit_at = event.label, event.at

    def snapshot(self) -> SupervisorStats:
        """An immutable copy of the current counters."""
        return SupervisorStats(
            name=self._name,
            escalations=self._escalations,
            children=MappingProxyType(
                {
                    name: ChildStats(
                        name=name,
                        running=c.running,
                        starts=c.starts,
                        restarts=c.restarts,
                        exits=MappingProxyType(dict(c.exits)),
                        last_exit=c.last_exit,
                        last_exit_at=c.last_exit_at,
                    )
                    for name, c in self._children.items()
                }
            ),
        )
