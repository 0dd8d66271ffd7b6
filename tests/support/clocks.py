"""Clocks a test moves by hand: stand-ins for time, not mocks.

`ManualClock` is a monotonic clock in seconds (what breakers, budgets, dedup windows and
the log shipper read), with a `sleep` that wakes only when the test advances past its
deadline. `ManualUtcClock` is an aware UTC wall clock (what token expiry is judged by).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel


class ManualClock:
    """A monotonic clock that moves only when the test sets `now` or calls `advance`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every `sleep` whose deadline has come."""
        self.now += seconds
        for deadline, woken in self._sleepers:
            if deadline <= self.now:
                woken.set()
        self._sleepers = [(d, w) for d, w in self._sleepers if not w.is_set()]

    async def sleep(self, seconds: float) -> None:
        """Return once the clock was advanced by `seconds` (at once for seconds <= 0)."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        woken = anyio.Event()
        self._sleepers.append((self.now + seconds, woken))
        await woken.wait()


class ManualUtcClock:
    """An aware UTC clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`."""
        self.now += timedelta(seconds=seconds)
