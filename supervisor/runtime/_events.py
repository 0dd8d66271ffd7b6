"""What a supervisor reports: one frozen event per start, exit, restart, stop, escalation.

Each event is logged (logger "supervisor", the fields in `extra`, so a JSON
formatter emits them as keys) and handed to the optional `on_event` callback,
which is where the process feeds its metrics.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.types import ErrorCategory

__all__ = ["EventKind", "SupervisorEvent", "exit_label"]


class EventKind(enum.Enum):
    """The lifecycle steps of a child that a supervisor reports."""

    STARTED = "started"
    """The child reported started (`task_status.started()`)."""

    EXITED = "exited"
    """The child's run ended by itself: returned, or raised (`category` set)."""

    RESTARTING = "restarting"
    """The child will be started again after `delay` seconds."""

    STOPPED = "stopped"
    """The supervisor stopped the child (a sibling's restart, escalation, or shutdown)."""

    ESCALATED = "escalated"
    """The supervisor gave up because of this child and is raising EscalationError."""


@dataclass(frozen=True, slots=True)
class SupervisorEvent:
    """One reported step; fields that do not apply to a kind are None."""

    kind: EventKind
    supervisor: str
    child: str
    at: float
    """The supervisor's clock when it happened."""
    category: ErrorCategory | None = None
    """For EXITED/ESCALATED: the failure's category (None: the child returned)."""
    delay: float | None = None
    """For RESTARTING: seconds until the start."""
    restart_count: int = 0
    """How many times this supervisor has restarted the child so far."""
    error: BaseException | None = None
    """The child's exception (EXITED, ESCALATED), or one raised while stopping (STOPPED)."""

    @property
    def label(self) -> str:
        """Short name of the exit for counters: 'returned', 'stopped' or the category."""
        if self.kind is EventKind.STOPPED:
            return "stopped"
        return exit_label(self.category)


def exit_label(category: ErrorCategory | None) -> str:
    """'returned' for a normal return, else the category's value (e.g. 'transient')."""
    return "returned" if category is None else category.value
