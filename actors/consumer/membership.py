"""Whether the consumer still belongs to its group: offsets are committed only by a member.

When the coordinator stops recognising the member (its session expired, or the broker
restarted and lost the group), aiokafka clears the member id and generation, then revokes
every partition before joining again. Those partitions were lost, not handed over: Java's
consumer calls `onPartitionsLost` for them and refuses to commit. aiokafka has no such
callback and would send the commit with generation -1, which a broker accepts as a
standalone commit whenever the group has no members (as after a restart). That commit
speaks for partitions another member may own by now; and after a broker that lost its
log, it writes offsets of the old log onto the new one, so the group resumes above the
new log's end and skips everything written below.

aiokafka exposes no membership state, so this reads its coordinator's member id, which is
empty while the consumer is not a member (aiokafka's heartbeat loop asks the same).
"""

from __future__ import annotations

from typing import Any

from aiokafka.protocol.group import JoinGroupRequest

__all__ = ["is_group_member"]


def is_group_member(consumer: Any) -> bool:
    """True while `consumer` (an AIOKafkaConsumer) holds a member id in its group."""
    coordinator = consumer._coordinator
    return coordinator is not None and coordinator.member_id != JoinGroupRequest.UNKNOWN_MEMBER_ID
