"""When a consumer is stalled: it owns partitions with records to read but reads nothing.

A stall is a wedged client (a fetch that never completes, a connection that went silent,
a broker that vanished): restarting the consumer is the cure, so the consumer raises a
TransientError and the supervisor restarts it. It is judged only while the consumer
waits for records, never while a handler runs: a slow handler is not a stall (nothing
can be fetched while the record before is in hand). Paused partitions have lag on
purpose and do not count. Lag is the broker's high watermark minus the position; the
high watermark comes from fetch responses (`consumer.highwater`, since Tansu's
end_offsets is wrong), so a partition never fetched from has unknown lag and does not
count either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PartitionProgress", "lag", "stalled"]


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """What the consumer knows of one assigned partition."""

    highwater: int | None
    position: int | None
    paused: bool


def lag(progress: PartitionProgress) -> int | None:
    """Records the broker holds beyond the position; None while either is unknown."""
    if progress.highwater is None or progress.position is None:
        return None
    return max(0, progress.highwater - progress.position)


def stalled(partitions: Iterable[PartitionProgress], *, idle_for: float, timeout: float) -> bool:
    """True when the consumer was idle longer than `timeout` while an unpaused partition lags.

    `idle_for` is how long ago a fetch last returned records, a record finished, offsets
    were committed, or partitions were assigned or resumed: any of those is progress.
    """
    if idle_for <= timeout:
        return False
    return any(not p.paused and (lag(p) or 0) > 0 for p in partitions)
