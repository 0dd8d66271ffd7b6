"""A counter that hot paths bump without taking a lock.

The breaker's success path and the retry budget's call path run on every
protected call; a `threading.Lock` round trip costs more than the rest of that
path together. `next()` on an `itertools.count` is one C call that holds the GIL
throughout, so concurrent bumps never lose an update (the standard library's
`threading` numbers its threads the same way). Reading is rarer and goes through
a lock: a read takes a tick itself, and subtracting the reads taken so far gives
the exact number of bumps; `add(n)`, for counting many at once, lowers the reads
subtracted instead. Free-threaded CPython builds would need a different
primitive here.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

__all__ = ["AtomicCounter"]


class AtomicCounter:
    """Counts events from any thread; `increment` is lock-free, `value()` is exact."""

    __slots__ = ("_read_lock", "_reads", "_ticks", "increment")

    increment: Callable[[], object]
    """Count one event (a bound C method: call it, do not wrap it)."""

    def __init__(self) -> None:
        self._ticks = itertools.count()
        self.increment = self._ticks.__next__
        self._reads = 0
        self._read_lock = threading.Lock()

    def add(self, count: int) -> None:
        """Count `count` events at once (under the read lock: it lowers the reads that
        `value()` subtracts, so it never races an increment or a read)."""
        if count < 0:
            raise ValueError(f"a counter only counts up, got {count}")
        with self._read_lock:
            self._reads -= count

    def value(self) -> int:
        """The number of `increment()` calls made so far."""
        with self._read_lock:
            ticks_before_this_read = next(self._ticks)
            count = ticks_before_this_read - self._reads
            self._reads += 1
            return count
