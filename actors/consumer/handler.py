"""How the user's handler is called: async on the loop, sync in a worker thread.

A synchronous handler runs in a worker thread by default: run on the event loop, one
slow call would stop heartbeats, commits, pause commands and log shipping. The thread
sees the record's KafkaLogContext (anyio copies the context into it). A cancelled
consumer waits for a handler thread to return (threads cannot be interrupted), so the
record in hand is finished before the consumer stops. `sync_handler_in_thread=False`
calls a cheap synchronous handler on the loop instead, saving the hand-over.

A handler may return anything; the return value is ignored. A synchronous callable
that returns an awaitable (a partial of a coroutine function, say) is awaited.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import anyio.to_thread

from actors.consumer.stats import ConsumerStats
from actors.messages import Record

__all__ = ["Handler", "HandlerRunner"]

Handler: TypeAlias = Callable[[Record], Awaitable[object] | object]
"""`handler(record)`, a coroutine function or a plain function."""


def _is_coroutine_function(handler: Handler) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 (a callable object's own method)
    return inspect.iscoroutinefunction(call)


class HandlerRunner:
    """Calls the handler for one record and times the call into the stats."""

    def __init__(self, handler: Handler, *, in_thread: bool, stats: ConsumerStats) -> None:
        if not callable(handler):
            raise TypeError(f"the handler must be callable, got {handler!r}")
        self._handler = handler
        self._is_async = _is_coroutine_function(handler)
        self._in_thread = in_thread and not self._is_async
        self._stats = stats

    async def __call__(self, record: Record) -> None:
        """Run the handler on `record` to completion; its exceptions propagate."""
        started = time.perf_counter()
        try:
            if self._in_thread:
                result = await anyio.to_thread.run_sync(self._handler, record)
            else:
                result = self._handler(record)
            if inspect.isawaitable(result):
                await result
        finally:
            self._stats.observe_handler(time.perf_counter() - started)
