"""Restart intensity: OTP's MaxR restarts within MaxT seconds.

A supervisor that keeps restarting a child which keeps failing only hides the
problem; past the limit it gives up and escalates, so the parent (or, at the
root, the operator) sees it. Semantics follow Erlang/OTP's supervisor: the
restarts of the last `period` seconds are counted, including the one being
decided, and the restart that would make the count exceed `max_restarts`
escalates instead (so `max_restarts=0` escalates on the first failure).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["RestartIntensity"]


class RestartIntensity:
    """Sliding window of recent restart times."""

    def __init__(self, max_restarts: int, period: float) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {max_restarts!r}")
        if not (period > 0 and math.isfinite(period)):
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        self.max_restarts = max_restarts
        self.period = period
        self._times: deque[float] = deque()

    def try_restart(self, now: float) -> bool:
        """Record a restart at `now` and return True, or return False if it exceeds the limit."""
        while self._times and now - self._times[0] >= self.period:
            self._times.popleft()
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        return True
