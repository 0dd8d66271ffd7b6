"""How long to wait before restarting a child: exponential growth, capped, with full jitter.

Jitter spreads the restarts of many processes that failed together (a broker outage
hits every consumer at once), so they do not return in lockstep: each wait is drawn
uniformly from [0, min(max, base * factor**attempt)] (full jitter, as in AWS's
"Exponential Backoff And Jitter"). `jitter=False` gives the plain deterministic
ladder, useful in tests. The ladder itself is `core.resilience.capped_exponential`,
the same one in-place retries climb; a restart backoff differs from a `RetryConfig`
only in having no attempt limit (the restart intensity decides when to stop).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from core.resilience.backoff import capped_exponential

__all__ = ["Backoff"]

Uniform = Callable[[float, float], float]
"""A source of uniform random numbers in [a, b], e.g. `random.Random(seed).uniform`."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay schedule for restarts: `base * factor**attempt`, capped at `max`, jittered.

    `jitter=True` draws each delay uniformly below its ceiling; `base=0` disables
    waiting altogether.
    """

    base: float = 0.1
    max: float = 30.0
    factor: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not (0 <= self.base <= self.max) or math.isnan(self.max):
            raise ValueError(f"need 0 <= base <= max, got base={self.base!r} max={self.max!r}")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay of the `attempt`-th consecutive restart (0-based)."""
        return capped_exponential(self.base, self.max, self.factor, attempt)

    def delay(self, attempt: int, *, uniform: Uniform = random.uniform) -> float:
        """The wait before the `attempt`-th consecutive restart."""
        ceiling = self.ceiling(attempt)
        return uniform(0.0, ceiling) if self.jitter else ceiling
