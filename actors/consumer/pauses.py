"""Why the consumer's partitions are paused: a set of reasons, so commands are idempotent.

Fetching stops while any reason is held and starts again once the last is lifted.
A reason is a breaker's name: the handler's breaker pauses when it refuses a call (the
consumer notices by itself) and the breaker monitor sends PausePartitions and
ResumePartitions on transitions of any breaker; the same command twice, or a resume for
a reason never held, changes nothing.
"""

from __future__ import annotations

__all__ = ["PauseReasons"]


class PauseReasons:
    """The reasons fetching is paused for."""

    def __init__(self) -> None:
        self._reasons: set[str] = set()

    @property
    def paused(self) -> bool:
        """True while at least one reason is held."""
        return bool(self._reasons)

    @property
    def reasons(self) -> frozenset[str]:
        """The reasons held now."""
        return frozenset(self._reasons)

    def hold(self, reason: str) -> bool:
        """Hold `reason`; True when this pauses a consumer that was fetching."""
        was_paused = self.paused
        self._reasons.add(reason)
        return not was_paused

    def lift(self, reason: str) -> bool:
        """Lift `reason`; True when this was the last reason, so fetching starts again."""
        if reason not in self._reasons:
            return False
        self._reasons.discard(reason)
        return not self.paused
