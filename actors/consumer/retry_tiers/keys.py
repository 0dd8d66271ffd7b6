"""Keys in retry: keeps a key's records in order while one of them waits in a tier.

Retry tiers break key order: record 1 of a key waits in a tier while record 2 of that
key is handled. With `preserve_key_order`, the consumer remembers each key (of each
source topic) that has records in the tiers, and where the furthest of them is:

- a source record of such a key is not handled: it is sent to the tier its key's
  furthest record is in, behind it (a tier topic is partitioned by key as its source
  is, so it lands in the same partition, after it), and counted as one more record of
  the key in retry;
- a tier record of such a key read from an earlier tier than that one is sent on to it
  likewise, without being handled (its turn has not come: an earlier record moved on);
- a tier record read from that tier is handled; when it ends (handled, or dead-lettered
  after the last tier) the key has one record fewer in retry, and leaves the set with
  its last. When it fails, it moves one tier on, and the key's furthest tier with it.

Sending on keeps the record's attempt count (it did not fail) and is acknowledged
before its offset is finished, as any tier produce. Records without a key have no key
order to keep and are never held back.

Memory is bounded: at most `max_keys_in_retry` keys are tracked. At the bound, fetching
from the source partitions waits (the tier partitions go on, so keys leave the set) until
a key leaves: nothing is lost and no key's order is given up. Records already fetched
still run, so the set may exceed the bound by at most the fetched records (`max_buffered`).

The set lives in the process: after a restart, or when a source partition moves to
another member, it starts empty, so a key's newer records may then be handled while an
older one still waits in a tier. Key order is kept within one member's ownership of a
partition, not across restarts and rebalances.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.consumer.retry_tiers.naming import TierMap
from actors.messages import Record

__all__ = ["KeysInRetry"]


@dataclass(slots=True)
class _Entry:
    tier: int
    """The furthest tier a record of the key is in."""
    count: int
    """The key's records in the tiers."""


class KeysInRetry:
    """The keys with records in the tiers (see the module docstring)."""

    def __init__(self, tiers: TierMap, max_keys: int) -> None:
        self._tiers = tiers
        self._max_keys = max_keys
        self._keys: dict[tuple[str, bytes], _Entry] = {}

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def full(self) -> bool:
        """At the bound: fetching from the source partitions should wait."""
        return len(self._keys) >= self._max_keys

    def _tier_index(self, record: Record) -> int | None:
        tier = self._tiers.tier_of(record.topic)
        return None if tier is None else tier.index

    def hold_back(self, record: Record) -> int | None:
        """The tier `record` must be sent to instead of being handled, None to handle it."""
        if record.key is None:
            return None
        entry = self._keys.get((record.original_topic, record.key))
        if entry is None:
            return None
        current = self._tier_index(record)
        if current is None or current < entry.tier:
            return entry.tier
        return None

    def sent(self, record: Record, tier: int) -> None:
        """`record` was produced to `tier` (after a failure, or held back)."""
        if record.key is None:
            return
        key = (record.original_topic, record.key)
        entry = self._keys.get(key)
        from_source = self._tier_index(record) is None
        if entry is None:
            self._keys[key] = _Entry(tier, 1)
            return
        entry.tier = max(entry.tier, tier)
        if from_source:
            entry.count += 1

    def ended(self, record: Record) -> None:
        """A tier `record` was handled or dead-lettered: one record fewer of its key."""
        if record.key is None or self._tier_index(record) is None:
            return
        key = (record.original_topic, record.key)
        entry = self._keys.get(key)
        if entry is None:
            return
        entry.count -= 1
        if entry.count <= 0:
            del self._keys[key]
