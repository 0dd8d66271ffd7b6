"""Positions above the end of their partition's log: reset them as Apache Kafka would.

Apache Kafka answers a fetch from beyond the log end with OffsetOutOfRange, and aiokafka
then resets the position by `auto_offset_reset`. Tansu answers with no records and no
error, reporting a high-water mark below the position. A consumer whose offsets outlived
the log (a broker restarted empty, or one that lost records while the group's offsets
survived) would wait there, and skip every record written below its position once the
log grows again.

So, on such a broker only (`ConsumerSettings.reset_beyond_log_end`; off by default,
since Apache Kafka and Event Hubs answer OffsetOutOfRange and aiokafka resets by
itself), the consumer compares each owned partition's position with the high-water mark of its
fetch responses once per watchdog tick (nothing on the per-record path), and resets a
partition whose position stayed above it for `CONFIRMATIONS` ticks in a row: a single
sighting may be a new partition leader whose high-water mark has not caught up yet.
The reset goes to the log start for "earliest" and to the high-water mark for "latest",
not to `end_offsets`: Tansu answers that with the last batch's first offset + 1, short of
the log end whenever the batch holds several records.

Once the log has grown past a stale position nothing tells it from a valid one, so this
is the second line of defence; the first is that a consumer the group no longer knows
never commits (actors.consumer.membership).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from aiokafka import TopicPartition

from actors.consumer.settings import OffsetReset

__all__ = ["CONFIRMATIONS", "BeyondLogEnd", "reset_position"]

CONFIRMATIONS: Final = 2
"""Ticks in a row that must find a position above the log end before it is reset."""


class BeyondLogEnd:
    """Counts, per partition, the checks in a row that found its position above the log end."""

    def __init__(self, confirmations: int = CONFIRMATIONS, *, enabled: bool = True) -> None:
        if confirmations < 1:
            raise ValueError(f"confirmations must be at least 1, got {confirmations}")
        self._confirmations = confirmations
        self._enabled = enabled
        self._sightings: dict[TopicPartition, int] = {}

    def confirmed(self, tp: TopicPartition, position: int, highwater: int) -> bool:
        """Note one check of `tp`; True when its position has been above the high-water mark
        for `confirmations` checks in a row (the count then starts again). Never when the
        watch is disabled (a broker that reports OffsetOutOfRange itself)."""
        if not self._enabled or position <= highwater:
            self._sightings.pop(tp, None)
            return False
        seen = self._sightings.get(tp, 0) + 1
        if seen < self._confirmations:
            self._sightings[tp] = seen
            return False
        self._sightings.pop(tp, None)
        return True

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop the count of `tps` (assigned afresh, or no longer owned)."""
        for tp in tps:
            self._sightings.pop(tp, None)


async def reset_position(
    consumer: Any, tp: TopicPartition, policy: OffsetReset, highwater: int
) -> int:
    """Seek `tp` to where `policy` says a consumer without a valid offset starts; returns it."""
    if policy == "earliest":
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets([tp])
        offset = starts[tp]
    else:
        offset = highwater
    consumer.seek(tp, offset)
    return offset
