"""A retry budget: retries may add at most a fixed fraction to the calls made.

Per-call retries multiply load exactly when a dependency is struggling: three
attempts per call triple the traffic during an outage. A budget shared by every
caller of one dependency caps retries at `ratio` of the calls over a sliding
window (Finagle's and gRPC's retry budgets), with a floor of
`min_retries_per_window` so a quiet service can still retry its few failures.

The window slides in steps of a tenth of its length (so a count leaves it up to
one step late). `record_call` runs on every
call, so it only reads the clock, compares and bumps the current step's lock-free
counter. Retries are rare and go through a lock, so that checking the budget and
spending it is one atomic step.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from typing import Final

from core.resilience.atomic_counter import AtomicCounter

__all__ = ["RetryBudget"]

_BUCKETS: Final = 10


class _Bucket:
    """Calls and retries counted during one step of the window, which ends at `ends_at`."""

    __slots__ = ("calls", "count_call", "ends_at", "retries")

    def __init__(self, ends_at: float) -> None:
        self.ends_at = ends_at
        self.calls = AtomicCounter()
        self.count_call = self.calls.increment
        self.retries = 0


class RetryBudget:
    """Allows a retry while retries in the window stay below max(floor, ratio × calls)."""

    def __init__(
        self,
        ratio: float = 0.2,
        window: float = 10.0,
        min_retries_per_window: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= ratio <= 1:
            raise ValueError(f"ratio must be between 0 and 1, got {ratio!r}")
        if not 0 < window < math.inf:
            raise ValueError(f"window must be finite and > 0 seconds, got {window!r}")
        if min_retries_per_window < 0:
            raise ValueError(f"min_retries_per_window must be >= 0, got {min_retries_per_window!r}")
        self.ratio = ratio
        self.window = window
        self.min_retries_per_window = min_retries_per_window
        self._clock = clock
        self._step = window / _BUCKETS
        self._lock = threading.Lock()
        self._newest = self._bucket_for(clock())
        self._buckets: collections.deque[_Bucket] = collections.deque(
            [self._newest], maxlen=_BUCKETS
        )

    def record_call(self) -> None:
        """Count one call (not its retries); cheap enough for every call."""
        now = self._clock()
        bucket = self._newest
        if now >= bucket.ends_at:
            with self._lock:
                bucket = self._current_bucket(now)
        bucket.count_call()

    def record_calls(self, count: int) -> None:
        """Count `count` calls at once (a consumer counts a run of records in one step)."""
        if count:
            with self._lock:
                self._current_bucket(self._clock()).calls.add(count)

    def can_retry(self) -> bool:
        """True if a retry now would stay within the budget (it is not spent)."""
        with self._lock:
            return self._has_room(self._clock())

    def record_retry(self) -> None:
        """Spend one retry, whether or not the budget allowed it."""
        with self._lock:
            self._current_bucket(self._clock()).retries += 1

    def try_acquire_retry(self) -> bool:
        """Spend one retry if the budget allows it; check and spend are one atomic step."""
        with self._lock:
            now = self._clock()
            if not self._has_room(now):
                return False
            self._current_bucket(now).retries += 1
            return True

    def _has_room(self, now: float) -> bool:
        """Whether the window ending at `now` has room for one more retry (lock held)."""
        window_start = now - self.window
        live = [bucket for bucket in self._buckets if bucket.ends_at > window_start]
        calls = sum(bucket.calls.value() for bucket in live)
        retries = sum(bucket.retries for bucket in live)
        return retries < max(self.min_retries_per_window, self.ratio * calls)

    def _current_bucket(self, now: float) -> _Bucket:
        """The bucket to count into at `now`, starting a new one if time moved on (lock held)."""
        if now >= self._newest.ends_at:
            self._newest = self._bucket_for(now)
            self._buckets.append(self._newest)
        return self._newest

    def _bucket_for(self, now: float) -> _Bucket:
        """A new bucket for the step containing `now` (steps are aligned to multiples of it)."""
        return _Bucket(ends_at=(math.floor(now / self._step) + 1) * self._step)
