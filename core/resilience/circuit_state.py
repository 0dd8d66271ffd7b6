"""The states of a circuit breaker and the snapshot of its counters."""

from __future__ import annotations

import dataclasses
import enum

__all__ = ["CircuitState", "CircuitStats"]


class CircuitState(enum.Enum):
    """Where a circuit breaker stands with its dependency."""

    CLOSED = "closed"
    """Healthy: every call goes through; consecutive counted failures may open it."""

    OPEN = "open"
    """Failing: calls are rejected until the recovery timeout has passed."""

    HALF_OPEN = "half_open"
    """Probing: a limited number of trial calls decide whether to close or reopen."""


@dataclasses.dataclass(frozen=True, slots=True)
class CircuitStats:
    """A consistent snapshot of a breaker's counters.

    The totals are lifetime counters (like metrics counters, so rates can be
    derived); `reset()` does not clear them. Times are readings of the breaker's
    clock. A call is counted when it finishes or is rejected.
    """

    state: CircuitState
    successes: int
    failures: int
    """Counted failures: TRANSIENT or UNKNOWN errors."""
    ignored_failures: int
    """PERMANENT, AUTH and CIRCUIT_OPEN errors: passed through, not held against the dependency."""
    cancellations: int
    """Calls interrupted by a BaseException that is not an Exception (cancellation, interrupt)."""
    rejections: int
    consecutive_failures: int
    """Counted failures since the last success or since the circuit last closed
    (only calls admitted in the state then current count, as for the state machine)."""
    consecutive_successes: int
    """Successes since the last counted failure (as above) or `reset()`."""
    state_changes: int
    last_failure_time: float | None
    """When the last counted failure happened; None if none has."""
    opened_at: float | None
    """When the circuit last opened; None if it never has."""

    @property
    def total_calls(self) -> int:
        """Every finished or rejected call, whatever its outcome."""
        return (
            self.successes
            + self.failures
            + self.ignored_failures
            + self.cancellations
            + self.rejections
        )
