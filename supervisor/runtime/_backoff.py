"""How long to wait before restarting a child: exponential growth, capped, with jitter.

Jitter spreads the restarts of many processes that failed together (a broker
outage hits every consumer at once), so they do not return in lockstep. Two
kinds, as described in AWS's "Exponential Backoff And Jitter":

* FULL: uniform in [0, min(max, base * factor**attempt)]; the spread is widest.
* DECORRELATED: uniform in [base, previous * factor], capped at max; each wait
  grows from the one before, so the sequence has no fixed schedule to align on.

`jitter=False` (NONE) gives the plain deterministic ladder, useful in tests.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "Jitter"]

Uniform = Callable[[float, float], float]
"""A source of uniform random numbers in [a, b], e.g. `random.Random(seed).uniform`."""


class Jitter(enum.Enum):
    """How a delay is randomised."""

    NONE = "none"
    FULL = "full"
    DECORRELATED = "decorrelated"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay schedule for restarts: `base * factor**attempt`, capped at `max`, jittered.

    `jitter=True` means FULL jitter, `False` means none; pass a `Jitter` for
    DECORRELATED. `base=0` disables waiting altogether.
    """

    base: float = 0.1
    max: float = 30.0
    factor: float = 2.0
    jitter: bool | Jitter = True

    def __post_init__(self) -> None:
        if not (0 <= self.base <= self.max) or math.isnan(self.max):
            raise ValueError(f"need 0 <= base <= max, got base={self.base!r} max={self.max!r}")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")

    @property
    def mode(self) -> Jitter:
        """The jitter kind that `jitter` stands for."""
        if isinstance(self.jitter, Jitter):
            return self.jitter
        return Jitter.FULL if self.jitter else Jitter.NONE

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay of the `attempt`-th consecutive restart (0-based)."""
        if self.base == 0:
            return 0.0
        try:
            grown = self.base * self.factor**attempt
        except OverflowError:  # factor**attempt beyond floats: far past any cap
            return self.max
        return min(self.max, grown)

    def delay(
        self, attempt: int, previous: float | None = None, *, uniform: Uniform = random.uniform
    ) -> float:
        """The wait before the `attempt`-th consecutive restart.

        `previous` is the delay returned for the attempt before (None after a
        reset); only DECORRELATED uses it.
        """
        mode = self.mode
        if mode is Jitter.NONE:
            return self.ceiling(attempt)
        if mode is Jitter.FULL:
            return uniform(0.0, self.ceiling(attempt))
        last = self.base if previous is None else previous
        return min(self.max, uniform(self.base, max(self.base, last * self.factor)))
