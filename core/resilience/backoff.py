"""How long to wait before each retry: capped exponential backoff with full jitter.

Full jitter (delay drawn uniformly from [0, min(max_delay_s, base * exp**attempt)])
spreads the retries of many clients that failed together, so a recovering
dependency is not hit by synchronised waves (AWS Architecture Blog, "Exponential
Backoff and Jitter").

A `retry_after` the dependency sent (Retry-After, a breaker's recovery time) is a
floor, even above `max_delay_s`: the server has said earlier attempts will be
refused, so waiting less only burns attempts and quota. A caller that cannot wait
that long should give up instead (fewer attempts, or let the supervisor decide).
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Final

__all__ = [
    "AUTH_RETRY",
    "DEFAULT_RETRY",
    "RetryConfig",
    "backoff_ceilings",
    "capped_exponential",
    "compute_delay",
]

_PRECOMPUTED_CEILINGS: Final = 32


@dataclasses.dataclass(frozen=True, slots=True)
class RetryConfig:
    """How many attempts to make and how the waits between them grow."""

    max_attempts: int = 3
    """Attempts in total, the first one included (1 = never retry)."""

    base_delay_s: float = 0.5
    """Seconds: the ceiling of the first wait."""

    max_delay_s: float = 30.0
    """Seconds: no wait computed from the backoff exceeds this (a retry_after may)."""

    exponential_base: float = 2.0
    """Factor by which the ceiling grows with each retry."""

    jitter: bool = True
    """Draw each wait uniformly below its ceiling (full jitter); False waits the ceiling."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        if not 0 <= self.base_delay_s < math.inf:  # also rejects NaN
            raise ValueError(f"base_delay_s must be finite and >= 0, got {self.base_delay_s!r}")
        if not self.base_delay_s <= self.max_delay_s < math.inf:
            raise ValueError(
                f"max_delay_s must be finite and >= base_delay_s ({self.base_delay_s!r}), "
                f"got {self.max_delay_s!r}"
            )
        if not 1 <= self.exponential_base < math.inf:
            raise ValueError(
                f"exponential_base must be finite and >= 1, got {self.exponential_base!r}"
            )


DEFAULT_RETRY = RetryConfig()
"""Three attempts, waits up to 0.5 s then 1 s: rides out a blip, gives up within seconds."""

AUTH_RETRY = RetryConfig(max_attempts=2, base_delay_s=1.0, max_delay_s=5.0)
"""For calls that carry a token: one retry, right after `on_auth_error` refreshed it."""


def compute_delay(
    config: RetryConfig, attempt: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry).

    Bounded by `config.max_delay_s` unless `retry_after` asks for more; never below
    `retry_after`. `rng` draws the jitter, so a seeded one makes schedules testable.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt!r}")
    ceiling = _ceiling(config, attempt)
    delay = ceiling * rng.random() if config.jitter else ceiling  # uniform in [0, ceiling)
    if retry_after is not None and retry_after > delay:
        return retry_after
    return delay


def backoff_ceilings(config: RetryConfig) -> tuple[float, ...]:
    """The ceilings of the first retries' waits under `config`, in order (as `compute_delay`).

    Computed once per decorated function, so a retry looks its ceiling up instead of
    raising a float to a power. At most `_PRECOMPUTED_CEILINGS` of them: a config that
    retries (nearly) forever must not allocate a ceiling per attempt.
    """
    retries = min(config.max_attempts - 1, _PRECOMPUTED_CEILINGS)
    return tuple(_ceiling(config, attempt) for attempt in range(retries))


def _ceiling(config: RetryConfig, attempt: int) -> float:
    return capped_exponential(
        config.base_delay_s, config.max_delay_s, config.exponential_base, attempt
    )


def capped_exponential(base: float, cap: float, factor: float, attempt: int) -> float:
    """min(cap, base * factor**attempt), without overflowing; 0 when base is 0.

    The one home of the backoff ladder: retries (`RetryConfig`) and the supervisor's
    restarts (`supervisor.runtime.Backoff`) both climb it.
    """
    if base == 0:
        return 0.0
    try:
        ceiling = base * factor**attempt
    except OverflowError:  # the exponential passed the cap many attempts ago
        return cap
    return ceiling if ceiling <= cap else cap
