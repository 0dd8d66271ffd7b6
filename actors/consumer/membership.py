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

Checking before a commit is not enough: aiokafka retries a commit that met a retriable
error (the coordinator away, as when the broker restarts), and each retry reads the
member id and generation anew, so a heartbeat that learned the member was forgotten in
between turns the retry into a generation -1 commit. `refuse_commits_outside_the_group`
closes that window where the request is built.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import UnknownMemberIdError
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.group import JoinGroupRequest

__all__ = ["is_group_member", "refuse_commits_outside_the_group"]


def is_group_member(consumer: Any) -> bool:
    """True while `consumer` (an AIOKafkaConsumer) holds a member id in its group."""
    coordinator = consumer._coordinator
    return coordinator is not None and coordinator.member_id != JoinGroupRequest.UNKNOWN_MEMBER_ID


def refuse_commits_outside_the_group(consumer: Any) -> None:
    """Make every offset-commit request of `consumer` (started) fail unless it is a member
    of a generation (a member id alone is set mid-join, with the generation still -1).

    Wraps the coordinator's `_do_commit_offsets`, which builds and sends one request: it
    raises UnknownMemberIdError instead, which aiokafka turns into CommitFailedError,
    as if the broker had refused the commit."""
    coordinator = consumer._coordinator
    if coordinator is None:
        raise RuntimeError("the consumer has no group coordinator: start it first")
    send_commit: Callable[..., Awaitable[None]] = coordinator._do_commit_offsets

    async def only_as_a_member(*args: Any, **kwargs: Any) -> None:
        if (
            coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID
            or coordinator.generation == OffsetCommitRequest.DEFAULT_GENERATION_ID
        ):
            raise UnknownMemberIdError("not committing: the group no longer knows this member")
        await send_commit(*args, **kwargs)

    coordinator._do_commit_offsets = only_as_a_member
