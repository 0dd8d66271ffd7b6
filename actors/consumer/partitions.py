"""The partitions one consumer owns: their offset trackers, commits and pauses.

Commits name explicit offsets (`{tp: OffsetAndMetadata(next_offset, "")}`) and only for
partitions still assigned, so a commit never speaks for a partition another member
took over. A commit is bounded by a deadline: aiokafka retries a missing coordinator
for ever, and a consumer that cannot commit must not hang silently. The handler's
`before_commit` hook, when it has one, is awaited first, under the same deadline: if it
raises, nothing is committed (the records stay uncommitted until the next attempt).
Then, with retry tiers, the deliveries of the records below each partition's new offset
are awaited, and a partition is committed only up to its first record whose delivery
failed (actors.consumer.deliveries): the same gate as `before_commit`, per partition.
Commits take turns (a lock), and only a member of the group commits (checked last,
right before the request: see actors.consumer.membership).

aiokafka rebalances eagerly (every partition is revoked, then the new set assigned), and
forgets pauses when it does, so `assign` re-applies the pause the reasons still hold.
Each assignment gets fresh trackers; a tracker that is revoked or replaced is marked
`released`, so the dispatcher drops the records fetched under the old assignment that
did not start (they are fetched again from the committed offset).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import anyio
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from actors.consumer.deliveries import PendingDeliveries
from actors.consumer.handler_calls import BeforeCommit
from actors.consumer.membership import is_group_member
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.pauses import PauseReasons
from actors.consumer.stats import ConsumerStats
from core.logging.context_managers import StageLogContext

__all__ = ["OwnedPartitions"]

_log = logging.getLogger(__name__)


class OwnedPartitions:
    """Bookkeeping for the partitions assigned to one aiokafka consumer."""

    def __init__(
        self,
        consumer: Any,
        stats: ConsumerStats,
        pauses: PauseReasons,
        *,
        before_commit: BeforeCommit | None = None,
        deliveries: PendingDeliveries | None = None,
    ) -> None:
        self._consumer = consumer
        self._before_commit = before_commit
        self._deliveries = deliveries
        self._stats = stats
        self._pauses = pauses
        self._trackers: dict[TopicPartition, PartitionOffsets] = {}
        self._committing = anyio.Lock()

    def tracker(self, tp: TopicPartition) -> PartitionOffsets | None:
        """The tracker of `tp` under the current assignment, None when not owned."""
        return self._trackers.get(tp)

    def owned(self) -> list[TopicPartition]:
        """The partitions assigned now."""
        return list(self._trackers)

    def assign(self, assigned: Iterable[TopicPartition]) -> None:
        """Take over `assigned` with fresh trackers, paused if a pause reason is held."""
        tps = list(assigned)
        for tp in tps:
            replaced = self._trackers.get(tp)
            if replaced is not None:
                replaced.released = True
                self._stats.committed.pop((tp.topic, tp.partition), None)
                if self._deliveries is not None:
                    self._deliveries.forget((tp.topic, tp.partition))
            self._trackers[tp] = PartitionOffsets()
        if self._pauses.paused and tps:
            self._consumer.pause(*tps)
        self._publish()

    def release(self, revoked: Iterable[TopicPartition]) -> None:
        """Forget `revoked` (after their finished offsets were committed)."""
        for tp in revoked:
            tracker = self._trackers.pop(tp, None)
            if tracker is not None:
                tracker.released = True
            key = (tp.topic, tp.partition)
            if self._deliveries is not None:
                self._deliveries.forget(key)
            self._pauses.lift_partition(key)
            self._stats.committed.pop(key, None)
            self._stats.lag.pop(key, None)
        self._publish()

    def pause_all(self) -> None:
        """Stop fetching from every owned partition."""
        if self._trackers:
            self._consumer.pause(*self._trackers)
        self._publish()

    def resume_all(self) -> None:
        """Fetch again from every owned partition but those paused on their own (a retry
        tier whose head is not due: actors.consumer.pauses)."""
        held = self._pauses.held_partitions
        resumed = [tp for tp in self._trackers if (tp.topic, tp.partition) not in held]
        if resumed:
            self._consumer.resume(*resumed)
        self._publish()

    def pause_one(self, tp: TopicPartition) -> None:
        """Stop fetching from `tp` alone (its pause is held in the pause reasons)."""
        self._consumer.pause(tp)
        self._publish()

    def resume_one(self, tp: TopicPartition) -> None:
        """Fetch from `tp` again, unless every partition is paused."""
        if tp in self._trackers and not self._pauses.paused:
            self._consumer.resume(tp)
        self._publish()

    async def commit(self, time_limit: float, only: Iterable[TopicPartition] | None = None) -> int:
        """Commit every owned partition's new watermark; returns how many were committed.

        One commit at a time (the periodic one, a revocation's, the exit's): two at once
        would run the handler's `before_commit` concurrently, and an older watermark could
        be committed after a newer one. Its log lines (a `before_commit`'s too) carry
        `stage: commit`."""
        async with self._committing:
            try:
                with StageLogContext("commit"):
                    return await self._commit(time_limit, only)
            except Exception:
                self._stats.commit_failures += 1
                raise

    async def _commit(self, time_limit: float, only: Iterable[TopicPartition] | None) -> int:
        chosen = set(only) if only is not None else None
        assigned = self._consumer.assignment()
        marks: dict[TopicPartition, tuple[PartitionOffsets, int]] = {}
        for tp, tracker in self._trackers.items():
            if (chosen is None or tp in chosen) and tp in assigned:
                mark = tracker.to_commit()
                if mark is not None:
                    marks[tp] = (tracker, mark)
        if not marks:
            return 0
        with anyio.fail_after(time_limit):
            if self._before_commit is not None:
                await self._before_commit()
                # It may have taken a while: commit only for what is still ours, as a member.
                marks = {tp: m for tp, m in marks.items() if self._trackers.get(tp) is m[0]}
                if not marks:
                    return 0
            if self._deliveries is not None:
                marks = await self._acknowledged(self._deliveries, marks)
                if not marks:
                    return 0
            if not is_group_member(self._consumer):
                _log.info("not committing: the group no longer knows this consumer")
                return 0
            await self._consumer.commit(
                {tp: OffsetAndMetadata(mark, "") for tp, (_, mark) in marks.items()}
            )
        for tp, (tracker, mark) in marks.items():
            tracker.committed = mark
            if self._trackers.get(tp) is tracker:
                self._stats.committed[(tp.topic, tp.partition)] = mark
        self._stats.commits += 1
        self._stats.last_commit_at = time.time()
        _log.debug(
            "committed %s", {f"{tp.topic}[{tp.partition}]": m for tp, (_, m) in marks.items()}
        )
        return len(marks)

    async def _acknowledged(
        self,
        deliveries: PendingDeliveries,
        marks: dict[TopicPartition, tuple[PartitionOffsets, int]],
    ) -> dict[TopicPartition, tuple[PartitionOffsets, int]]:
        """`marks` once the deliveries below them settled, each lowered to its partition's
        first failed delivery; those left with nothing new, or no longer ours, dropped."""
        kept: dict[TopicPartition, tuple[PartitionOffsets, int]] = {}
        for tp, (tracker, mark) in marks.items():
            mark = await deliveries.acknowledged_mark((tp.topic, tp.partition), mark)
            committed = tracker.committed
            if self._trackers.get(tp) is tracker and (committed is None or mark > committed):
                kept[tp] = (tracker, mark)
        return kept

    def _publish(self) -> None:
        self._stats.assigned = frozenset((tp.topic, tp.partition) for tp in self._trackers)
        self._stats.paused = (
            frozenset((tp.topic, tp.partition) for tp in self._consumer.paused())
            if self._trackers
            else frozenset()
        )
        self._stats.pause_reasons = self._pauses.reasons
        self._stats.tier_paused = self._pauses.held_partitions
