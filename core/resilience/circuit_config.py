"""How a circuit breaker judges a dependency, and the presets for ours.

The presets differ because the dependencies fail differently:

* `KAFKA_CIRCUIT_CONFIG` (5 failures, 10 s, 1 trial, 1 success): aiokafka already
  retries inside each request, so five failures in a row mean the cluster or the
  Event Hubs namespace is down, not flaky. Leader elections and rolling restarts
  finish within seconds, so probe again after 10 s. One successful produce,
  fetch or commit proves the whole path, so one trial success closes the circuit.
* `ONELAKE_CIRCUIT_CONFIG` (5 failures, 30 s, 2 trials, 2 successes): storage
  throttles with 429/503 and asks for tens of seconds; probing sooner only
  extends the throttling. Uploads are independent, so two trials may run at
  once, and two successes are required so one lucky request during a partial
  recovery does not release the whole backlog.
* `KUSTO_CIRCUIT_CONFIG` (3 failures, 60 s, 1 trial, 2 successes): ingestion and
  queries take seconds each and Kusto throttles per cluster, so stop after three
  failures, wait a minute (its throttling and ingestion-capacity windows are
  about that long), probe with one call at a time and close after two successes.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = [
    "DEFAULT_CIRCUIT_CONFIG",
    "KAFKA_CIRCUIT_CONFIG",
    "KUSTO_CIRCUIT_CONFIG",
    "ONELAKE_CIRCUIT_CONFIG",
    "CircuitBreakerConfig",
]


@dataclasses.dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """When to open, how long to stay open, and how to probe for recovery."""

    failure_threshold: int = 5
    """Consecutive counted failures (TRANSIENT or UNKNOWN) that open a closed circuit."""

    recovery_timeout_s: float = 30.0
    """Seconds an open circuit rejects calls before it lets trial calls through."""

    half_open_max_calls: int = 1
    """Trial calls allowed to run at the same time while half-open."""

    success_threshold: int = 1
    """Trial successes that close a half-open circuit."""

    def __post_init__(self) -> None:
        for field in ("failure_threshold", "half_open_max_calls", "success_threshold"):
            value = getattr(self, field)
            if value < 1:
                raise ValueError(f"{field} must be >= 1, got {value!r}")
        if not 0 < self.recovery_timeout_s < math.inf:  # also rejects NaN
            raise ValueError(
                "recovery_timeout_s must be finite and > 0 seconds, "
                f"got {self.recovery_timeout_s!r}"
            )


DEFAULT_CIRCUIT_CONFIG = CircuitBreakerConfig()
KAFKA_CIRCUIT_CONFIG = CircuitBreakerConfig(
    failure_threshold=5, recovery_timeout_s=10.0, half_open_max_calls=1, success_threshold=1
)
ONELAKE_CIRCUIT_CONFIG = CircuitBreakerConfig(
    failure_threshold=5, recovery_timeout_s=30.0, half_open_max_calls=2, success_threshold=2
)
KUSTO_CIRCUIT_CONFIG = CircuitBreakerConfig(
    failure_threshold=3, recovery_timeout_s=60.0, half_open_max_calls=1, success_threshold=2
)
