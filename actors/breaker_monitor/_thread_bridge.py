"""Hand items from any thread to one task on the event loop: in order, never blocking the sender.

Circuit breaker listeners and logging handlers run wherever the failing call or the
log statement ran, often in a worker thread, where anyio memory streams must not be
touched. `ThreadBridge.submit` appends to a lock-protected deque and, if the receiver
may be asleep, wakes it with the loop's thread-safe entry point; `receive` yields the
items in submission order.

Why `loop.call_soon_threadsafe` rather than `anyio.from_thread.run_sync`: the latter
waits until the loop has run the call, so a busy or stopped loop would stall the
sending thread (a handler, a logger); it also refuses to run on the loop's own thread,
where breaker listeners fire too. The pipeline runs on asyncio (aiokafka needs it), so
the asyncio entry point is the honest one.

Unbounded on purpose: it carries breaker transitions, rare events none of which may be
lost (the log shipper, which takes high-volume records from threads, has its own bounded
`LogBuffer`). Items submitted before `bind` (or after the loop closed) wait in the deque
for the next `bind`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

import anyio

__all__ = ["ThreadBridge"]

T = TypeVar("T")


class ThreadBridge(Generic[T]):
    """A thread-safe, order-preserving hand-over into one event loop (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[T] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = anyio.Event()
        self._wakeup_scheduled = False

    def pending(self) -> int:
        """How many items wait to be received."""
        with self._lock:
            return len(self._items)

    def bind(self) -> None:
        """Deliver to the running event loop from now on; call from a task on that loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._loop = loop
            self._wakeup = anyio.Event()
            self._wakeup_scheduled = False
            if self._items:
                self._wakeup.set()

    def submit(self, item: T) -> None:
        """Queue `item` for the receiver; safe from any thread, returns at once, never raises."""
        with self._lock:
            self._items.append(item)
            loop = self._loop
            if loop is None or self._wakeup_scheduled:
                return
            self._wakeup_scheduled = True
        try:
            loop.call_soon_threadsafe(self._wake, loop)
        except RuntimeError:  # the loop is closed: the item waits for the next bind()
            with self._lock:
                self._wakeup_scheduled = False

    def receive_nowait(self) -> T:
        """The oldest waiting item; raises anyio.WouldBlock when there is none."""
        with self._lock:
            if not self._items:
                raise anyio.WouldBlock
            return self._items.popleft()

    async def receive(self) -> T:
        """Wait for and return the oldest item; call only from the loop given to `bind`."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._wakeup.is_set():
                    self._wakeup = anyio.Event()
                wakeup = self._wakeup
            await wakeup.wait()

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if loop is not self._loop:
                return
            self._wakeup_scheduled = False
            wakeup = self._wakeup
        wakeup.set()
