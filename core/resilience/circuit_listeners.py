"""Delivers a breaker's state changes to its listeners, in order, outside its lock.

Listeners run in the thread that caused the transition, after the breaker's lock
is released, so a slow or re-entrant listener cannot block or deadlock calls.
Transitions are queued under the breaker's lock and drained by one thread at a
time, so every listener sees them in the order they happened even when threads
race. A listener that raises is logged and skipped: monitoring must not break the
breaker it monitors.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

from core.resilience.circuit_state import CircuitState

__all__ = ["CircuitListener", "TransitionPublisher"]

CircuitListener = Callable[[str, CircuitState, CircuitState], object]
"""Called as `listener(breaker_name, old_state, new_state)`."""

_logger = logging.getLogger(__name__)


class TransitionPublisher:
    """Queues transitions and delivers each to every listener exactly once, in order."""

    def __init__(self, breaker_name: str) -> None:
        self._breaker_name = breaker_name
        self._listeners: tuple[CircuitListener, ...] = ()
        self._registry_lock = threading.Lock()
        self._pending: collections.deque[tuple[CircuitState, CircuitState]] = collections.deque()
        self._delivery_lock = threading.Lock()
        self._delivering_thread: int | None = None

    def add(self, listener: CircuitListener) -> None:
        """Register `listener` for every later transition."""
        with self._registry_lock:
            self._listeners = (*self._listeners, listener)

    def remove(self, listener: CircuitListener) -> None:
        """Unregister `listener`; ValueError if it was not registered."""
        with self._registry_lock:
            remaining = list(self._listeners)
            remaining.remove(listener)
            self._listeners = tuple(remaining)

    def enqueue(self, old: CircuitState, new: CircuitState) -> None:
        """Queue a transition; call under the breaker's lock so the queue keeps its order."""
        self._pending.append((old, new))

    def deliver(self) -> None:
        """Deliver queued transitions; call after releasing the breaker's lock."""
        if not self._pending or self._delivering_thread == threading.get_ident():
            # Nothing queued, or a listener of this thread caused the transition:
            # the delivery loop further up this thread's stack picks it up next.
            return
        with self._delivery_lock:
            self._delivering_thread = threading.get_ident()
            try:
                while self._pending:
                    old, new = self._pending.popleft()
                    for listener in self._listeners:
                        self._notify(listener, old, new)
            finally:
                self._delivering_thread = None

    def _notify(self, listener: CircuitListener, old: CircuitState, new: CircuitState) -> None:
        try:
            listener(self._breaker_name, old, new)
        except Exception:
            _logger.exception(
                "circuit breaker listener %r failed on %s: %s -> %s",
                listener,
                self._breaker_name,
                old.name,
                new.name,
            )
