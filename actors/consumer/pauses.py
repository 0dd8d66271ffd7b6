"""Why the consumer's partitions are paused: a set of reasons, so commands are idempotent.

Fetching stops while any reason is held and starts again once the last is lifted.
A reason is a breaker's name. The breaker monitor sends PausePartitions and
ResumePartitions on transitions of any breaker; the consumer holds a reason by itself
when a breaker refuses a record, until that breaker's retry-after (then the record is
tried again: the breaker's trial call, or a new refusal). The same command twice, or a
resume for a reason never held, changes nothing. A pause without a deadline keeps the
deadline the reason already had, so a late PausePartitions cannot strand the consumer.

A retry tier's partition is paused on its own (`hold_partition`), until its head record
is due: that stops fetching from it alone, never the records of other partitions, so
it leaves `paused` as it is. A resume of every partition (the last reason lifted)
leaves such a partition paused; it is resumed when its deadline comes (`due_partitions`)
or forgotten when it is revoked (its next fetch, by whoever owns it, parks it again).
A source partition is held the same way, without a deadline, while the keys kept in
order through the tiers are at their bound (actors.consumer.retry_tiers.keys).
"""

from __future__ import annotations

__all__ = ["PauseReasons"]


class PauseReasons:
    """The reasons fetching is paused for, each with an optional monotonic deadline."""

    def __init__(self) -> None:
        self._deadlines: dict[str, float | None] = {}
        self._partitions: dict[tuple[str, int], float] = {}
        self.paused = False
        """True while at least one reason is held (an attribute: read before every record)."""

    @property
    def reasons(self) -> frozenset[str]:
        """The reasons held now."""
        return frozenset(self._deadlines)

    def hold(self, reason: str, until: float | None = None) -> bool:
        """Hold `reason` (until the monotonic time `until`, if given); True when this pauses
        a consumer that was fetching."""
        was_paused = self.paused
        if until is not None or reason not in self._deadlines:
            self._deadlines[reason] = until
        self.paused = True
        return not was_paused

    def lift(self, reason: str) -> bool:
        """Lift `reason`; True when this was the last reason, so fetching starts again."""
        if reason not in self._deadlines:
            return False
        del self._deadlines[reason]
        self.paused = bool(self._deadlines)
        return not self.paused

    def due(self, now: float) -> list[str]:
        """The reasons whose deadline has come by `now`."""
        return [r for r, until in self._deadlines.items() if until is not None and until <= now]

    @property
    def held_partitions(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs paused on their own, each until its deadline."""
        return frozenset(self._partitions)

    def hold_partition(self, partition: tuple[str, int], until: float) -> None:
        """Pause `partition` alone until the monotonic time `until`."""
        self._partitions[partition] = until

    def holds_partition(self, partition: tuple[str, int]) -> bool:
        """Whether `partition` is paused on its own."""
        return partition in self._partitions

    def lift_partition(self, partition: tuple[str, int]) -> bool:
        """Forget `partition`'s own pause; True when it was held."""
        return self._partitions.pop(partition, None) is not None

    def due_partitions(self, now: float) -> list[tuple[str, int]]:
        """The partitions whose own pause is over by `now`."""
        return [p for p, until in self._partitions.items() if until <= now]
