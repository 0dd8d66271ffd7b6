"""Which topics are retry tiers, and of which source topic and position.

The consumer reads its tiers beside its source topics, so every fetched record's topic
is looked up here once: a tier topic gives the tier (its source topic, its position,
its delay); any other topic is a source. Built once from the settings; the names are
checked there (valid Kafka names, no two tiers sharing a topic, no tier that is also a
source or a dead-letter topic: each would loop or mix records of different meaning).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from actors.consumer.retry_tiers.settings import RetryTierSettings

__all__ = ["Tier", "TierMap"]


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier topic: records of `source` that failed `index + 1` times wait `delay_s` here."""

    topic: str
    source: str
    index: int
    delay_s: int


class TierMap:
    """Every tier topic of the consumed source topics, by name."""

    def __init__(self, settings: RetryTierSettings, sources: Iterable[str]) -> None:
        self._settings = settings
        self._by_topic: dict[str, Tier] = {}
        self._by_source: dict[tuple[str, int], Tier] = {}
        """The same tiers by (source topic, index): looked up for every failed record."""
        for source in sources:
            for index, delay in enumerate(settings.delays_s):
                topic = settings.topic(source, index)
                tier = self._by_topic.setdefault(topic, Tier(topic, source, index, delay))
                self._by_source[(source, index)] = tier

    @property
    def count(self) -> int:
        """How many tiers each source has."""
        return len(self._settings.delays_s)

    def topics(self) -> list[str]:
        """Every tier topic, sorted."""
        return sorted(self._by_topic)

    def tier_of(self, topic: str) -> Tier | None:
        """The tier `topic` is, None for a source topic."""
        return self._by_topic.get(topic)

    def __contains__(self, topic: object) -> bool:
        return topic in self._by_topic

    def tier(self, source: str, index: int) -> Tier:
        """Tier `index` of `source`."""
        return self._by_source[(source, index)]
