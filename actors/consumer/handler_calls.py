"""How the user's handler is called: async on the loop, sync in a worker thread.

A synchronous handler runs in a worker thread by default: run on the event loop, one
slow call would stop heartbeats, commits, pause commands and log shipping. Each call is
one trip to a thread of a pool as wide as `max_in_flight` (actors.consumer.handover),
never a thread per record. The thread sees its record's KafkaLogContext. A cancelled
consumer waits for the handler call in hand to return (threads cannot be interrupted),
then stops before the next one.
`sync_handler_in_thread=False` calls a synchronous handler on the loop instead: for
handlers that never block.

A handler may return anything; the return value is ignored, except a batch handler's
(actors.consumer.batches), whose result names the records that failed. A synchronous callable
that returns an awaitable (a lambda around a coroutine function, say) is awaited on the
loop; from a worker thread, the thread waits for that.

A handler may also have a `before_commit()` method, sync (run in a worker thread) or
async: the consumer awaits it before every commit, under the commit's deadline (a sync
hook cannot be interrupted in its thread: one that hangs holds the commits, and the
stop, until it returns, or until the graceful-stop deadline or a second signal ends
the process at once, uncommitted).
If it raises, that commit is skipped
and the error is judged like a failed commit: a TRANSIENT one is tried again at the next
commit interval, any other ends the consumer for the supervisor to decide (the records
not committed are delivered again). That is where a handler that buffers
makes what it was given durable once per commit instead of once per record (the
`jsonl:` handler fsyncs there).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, cast

import anyio.from_thread
import anyio.to_thread

from actors.consumer.batches import BatchHandler
from actors.messages import Record

__all__ = ["BeforeCommit", "Callee", "Handler", "HandlerRunner"]

Handler: TypeAlias = Callable[[Record], Awaitable[object] | object]
"""`handler(record)`, a coroutine function or a plain function."""

Callee: TypeAlias = Callable[[Any], Awaitable[object] | object]
"""What a HandlerRunner calls: a handler of one record, or a batch handler of a sequence."""

BeforeCommit: TypeAlias = Callable[[], Awaitable[None]]
"""Awaited before every commit; raising skips that commit."""


def _is_coroutine_function(handler: Callable[..., object]) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 (a callable object's own method)
    return inspect.iscoroutinefunction(call)


async def _wait_for(awaitable: Awaitable[object]) -> object:
    return await awaitable


class HandlerRunner:
    """Calls the handler where the settings say: awaited on the loop, or in a worker thread."""

    def __init__(self, handler: Callee, *, in_thread: bool) -> None:
        if not callable(handler):
            raise TypeError(f"the handler must be callable, got {handler!r}")
        self.batches = isinstance(handler, BatchHandler)
        """True for a batch handler: it is given sequences of one partition's records."""
        hooks = handler
        if isinstance(handler, BatchHandler):
            handler = handler.function
        self.handler = handler
        is_async = _is_coroutine_function(handler)
        self.in_thread = in_thread and not is_async
        """True for a synchronous handler that must run in a worker thread."""
        self.on_loop: Callable[[Any], Awaitable[object]] = (
            cast(Callable[[Any], Awaitable[object]], handler) if is_async else self._sync_on_loop
        )
        """Awaitable call of the handler on the event loop (the handler itself if async)."""
        self.before_commit = _before_commit_of(hooks)
        """The handler's `before_commit()` as an awaitable call, None if it has none."""

    async def __call__(self, record: Record) -> None:
        """One call of the handler on `record`, where the settings say; errors propagate."""
        if self.in_thread:
            await anyio.to_thread.run_sync(self.in_worker_thread, record)
        else:
            await self.on_loop(record)

    def in_worker_thread(self, record: Any) -> object:
        """Call a synchronous handler from an anyio worker thread (awaitables on the loop);
        returns its result."""
        result = self.handler(record)
        if result is not None and inspect.isawaitable(result):
            return anyio.from_thread.run(_wait_for, result)
        return result

    async def _sync_on_loop(self, record: Any) -> object:
        result = self.handler(record)
        if result is not None and inspect.isawaitable(result):
            return await result
        return result


def _before_commit_of(handler: Callee) -> BeforeCommit | None:
    hook = getattr(handler, "before_commit", None)
    if hook is None:
        return None
    if not callable(hook):
        raise TypeError(f"the handler's before_commit must be callable, got {hook!r}")
    if _is_coroutine_function(hook):
        return cast(BeforeCommit, hook)
    sync_hook = hook

    def call_and_wait() -> None:
        result = sync_hook()
        if result is not None and inspect.isawaitable(result):
            anyio.from_thread.run(_wait_for, result)

    async def in_worker_thread() -> None:
        await anyio.to_thread.run_sync(call_and_wait)

    return in_worker_thread
