"""Stop a broken handler from emptying a topic into the dead-letter topic.

One bad record is dead-lettered and the stream goes on. When more than `max_share` of
the last `window` records were dead-lettered (once at least `min_sample` were seen), the
handler or its input is broken as a whole: the consumer raises a PermanentError and the
supervisor escalates, so a person looks at it.

The records already dead-lettered are in the dead-letter topic (the broker acknowledged
them), so the consumer commits up to them before it stops: replaying them after the fix
would only duplicate them in the dead-letter topic. The fix is replayed from there.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PoisonGuard"]


class PoisonGuard:
    """A sliding window over the outcomes of the last `window` finished records.

    Handled records are only counted (the consumer reports them a run at a time); the
    window remembers the sequence numbers of the dead-lettered ones still inside it.
    """

    def __init__(self, *, window: int, max_share: float, min_sample: int) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if not 0 < max_share <= 1:
            raise ValueError(f"max_share must be in (0, 1], got {max_share}")
        if not 1 <= min_sample <= window:
            raise ValueError(f"min_sample must be in [1, window={window}], got {min_sample}")
        self.window = window
        self.max_share = max_share
        self.min_sample = min_sample
        self._finished = 0
        self._dead_letters: deque[int] = deque()
        """Sequence numbers (1-based, among finished records) of recent dead letters."""

    @property
    def sample(self) -> int:
        """How many outcomes the window holds."""
        return min(self._finished, self.window)

    @property
    def dead_lettered(self) -> int:
        """How many records of the window were dead-lettered."""
        return len(self._dead_letters)

    def observe_handled(self, count: int = 1) -> None:
        """Add `count` records that were handled, sliding the window on."""
        self._finished += count
        oldest_inside = self._finished - self.window
        dead_letters = self._dead_letters
        while dead_letters and dead_letters[0] <= oldest_inside:
            dead_letters.popleft()

    def observe_dead_lettered(self) -> None:
        """Add one record that was dead-lettered."""
        self.observe_handled()
        self._dead_letters.append(self._finished)

    def storming(self) -> bool:
        """True when more than `max_share` of at least `min_sample` records were dead-lettered."""
        sample = self.sample
        return sample >= self.min_sample and len(self._dead_letters) > self.max_share * sample

    def describe(self) -> str:
        """The evidence, for the error that stops the consumer."""
        return f"poison storm: {self.dead_lettered} of last {self.sample} records dead-lettered"
