"""Which siblings a restart takes along: OTP's one_for_one, one_for_all, rest_for_one.

Pure functions over child names, so the rules are tested without any tasks.
Children are identified by name and ordered by their start order.

Two choices worth stating:

* A sibling stopped only because of the strategy is restarted unless its policy
  is NEVER (OTP: a temporary child is never restarted, even when a sibling's
  death terminated it); such a NEVER sibling is dropped for good.
* A child that already finished for good (its own policy said "do not restart")
  stays finished: a strategy restart only touches children that are running or
  waiting to start. (OTP would start it again under one_for_all; here a finished
  one-shot task never runs twice.)
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ["GroupRestart", "Strategy", "group_restart"]


class Strategy(enum.Enum):
    """Which children are restarted when one of them fails."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that exited: siblings are independent."""

    ONE_FOR_ALL = "one_for_all"
    """Every child: they only work together."""

    REST_FOR_ONE = "rest_for_one"
    """The child and those started after it: later children depend on earlier ones."""


@dataclass(frozen=True, slots=True)
class GroupRestart:
    """What a restart of one child means for the others."""

    stop: tuple[str, ...]
    """Running siblings to stop first, in reverse start order."""

    restart: tuple[str, ...]
    """Children to start again, in start order (the failed child among them)."""

    drop: tuple[str, ...]
    """Stopped siblings not restarted (policy NEVER), in start order: finished for good."""


def group_restart(
    strategy: Strategy,
    failed: str,
    order: Sequence[str],
    *,
    active: Collection[str],
    pending: Collection[str],
    never: Collection[str],
) -> GroupRestart:
    """The stop/restart plan when `failed` is restarted.

    `active` are the children with a running task (started or starting),
    `pending` those waiting to be started, `never` those whose policy is NEVER.
    """
    if strategy is Strategy.ONE_FOR_ONE:
        return GroupRestart(stop=(), restart=(failed,), drop=())
    position = order.index(failed)
    scope = order if strategy is Strategy.ONE_FOR_ALL else order[position:]
    stop = tuple(name for name in reversed(scope) if name in active and name != failed)
    drop = tuple(name for name in stop if name in never)
    restart = tuple(
        name
        for name in scope
        if name == failed or name in pending or (name in active and name not in never)
    )
    return GroupRestart(stop=stop, restart=restart, drop=tuple(reversed(drop)))
