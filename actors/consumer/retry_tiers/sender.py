"""Sends a failed record on: to the next retry tier, or after the last to the dead-letter topic.

The next tier follows from where the record was read: a source record goes to tier 0,
a record read from tier k to tier k + 1, and one read from the last tier has no next
tier (`next_tier` is None): the failure path dead-letters it with `final_headers`, so
the dead letter carries the whole retry history beside its dlq.* headers. The produce
goes through the dead-letter writer's producer (one producer, acks=all) without
awaiting the acknowledgement: `send` returns once the copy is handed over, its delivery
noted in the pending deliveries under the record's own partition and offset, and the
failure path books the record as finished. The commit covering it awaits that delivery
first and never goes past it if it failed (actors.consumer.deliveries), so the copy is
acknowledged before the commit that covers its record, as a dead letter is, while the
copies of many records share produce requests. A key's copies to one tier keep their
order: the producer sends them to one partition in the order handed over, one request
at a time per partition, retries included.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from actors.consumer.dead_letter import DeadLetterWriter
from actors.consumer.deliveries import PendingDeliveries
from actors.consumer.retry_tiers.headers import retry_headers
from actors.consumer.retry_tiers.naming import Tier, TierMap
from actors.consumer.stats import ConsumerStats
from actors.messages import Record

__all__ = ["TierSender", "next_tier_index"]


def next_tier_index(current: int | None, tiers: int) -> int | None:
    """The tier after `current` (None: a source record), None after the last."""
    index = 0 if current is None else current + 1
    return index if index < tiers else None


class TierSender:
    """Produces failed records to their next tier (see the module docstring)."""

    def __init__(
        self,
        tiers: TierMap,
        writer: DeadLetterWriter,
        deliveries: PendingDeliveries,
        stats: ConsumerStats,
        *,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._tiers = tiers
        self._writer = writer
        self._deliveries = deliveries
        self._stats = stats
        self._wall_ms = wall_ms

    def next_tier(self, record: Record) -> Tier | None:
        """The tier `record` goes to when it fails now; None after the last."""
        current = self._tiers.tier_of(record.topic)
        index = next_tier_index(None if current is None else current.index, self._tiers.count)
        return None if index is None else self._tiers.tier(record.original_topic, index)

    def tier(self, record: Record, index: int) -> Tier:
        """Tier `index` of `record`'s source topic."""
        return self._tiers.tier(record.original_topic, index)

    async def send(self, record: Record, error: BaseException | None, tier: Tier) -> None:
        """Produce `record` to `tier`, due `tier.delay_s` from now; returns once handed
        over, its delivery pending (module docstring). `error` None: held back for its
        key's order, not failed."""
        now = self._wall_ms()
        headers = retry_headers(
            record, error, tier=tier.index, due_ms=now + tier.delay_s * 1000, now_ms=now
        )
        delivery = await self._writer.enqueue(tier.topic, record.key, record.value, headers)
        self._deliveries.add((record.topic, record.partition), record.offset, delivery, tier.topic)
        sent = self._stats.tier_sent
        sent[tier.topic] = sent.get(tier.topic, 0) + 1

    def final_headers(self, record: Record, error: BaseException) -> Record:
        """`record` with its retry headers brought up to date for the dead-letter topic."""
        now = self._wall_ms()
        headers = retry_headers(record, error, tier=self._tiers.count, due_ms=now, now_ms=now)
        return record.replace(headers=headers)
