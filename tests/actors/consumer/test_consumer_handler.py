"""How the user's handler is called: coroutine functions awaited on the loop, plain
functions in a worker thread (or on the loop when asked), awaitable results awaited."""

from __future__ import annotations

import functools
import threading

import anyio
import anyio.lowlevel
import pytest

from actors.consumer.handler_calls import HandlerRunner
from actors.messages import Record

pytestmark = pytest.mark.anyio

RECORD = Record("orders", 0, 7, b"k", b"v")


async def test_sync_handler_runs_in_a_worker_thread() -> None:
    """A plain function runs off the event loop's thread by default."""
    threads: list[int] = []
    await HandlerRunner(lambda record: threads.append(threading.get_ident()), in_thread=True)(
        RECORD
    )
    assert threads
    assert threads[0] != threading.get_ident()


async def test_sync_handler_can_run_on_the_loop() -> None:
    """With in_thread=False a plain function runs on the event loop's own thread."""
    threads: list[int] = []
    await HandlerRunner(lambda record: threads.append(threading.get_ident()), in_thread=False)(
        RECORD
    )
    assert threads == [threading.get_ident()]


class AsyncCallable:
    """A handler object whose __call__ is a coroutine function."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    async def __call__(self, record: Record) -> None:
        await anyio.lowlevel.checkpoint()
        self.threads.append(threading.get_ident())


async def test_async_callables_are_awaited_on_the_loop() -> None:
    """Coroutine functions, async callable objects and partials of them run on the loop."""
    handler = AsyncCallable()
    for candidate in (handler, handler.__call__, functools.partial(handler.__call__)):
        await HandlerRunner(candidate, in_thread=True)(RECORD)
    assert handler.threads == [threading.get_ident()] * 3


@pytest.mark.parametrize("in_thread", [True, False])
async def test_awaitables_returned_by_plain_functions_are_awaited(in_thread: bool) -> None:
    """A plain function returning an awaitable has it awaited on the event loop, also
    when the function itself runs in a worker thread (which waits for it)."""
    handler = AsyncCallable()
    runner = HandlerRunner(lambda record: handler(record), in_thread=in_thread)
    await runner(RECORD)
    assert handler.threads == [threading.get_ident()]


async def test_errors_of_plain_functions_propagate_from_the_thread() -> None:
    """An exception raised by a plain function in its worker thread reaches the caller."""

    def failing(record: Record) -> None:
        raise ValueError(f"bad record {record.offset}")

    with pytest.raises(ValueError, match="bad record 7"):
        await HandlerRunner(failing, in_thread=True)(RECORD)


def test_a_handler_must_be_callable() -> None:
    """Something that cannot be called is refused when the runner is built."""
    with pytest.raises(TypeError, match="callable"):
        HandlerRunner("not a function", in_thread=True)


class _AsyncCallable:
    """An object whose `__call__` is a coroutine function, used as a `before_commit`."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1


@pytest.mark.anyio
async def test_before_commit_hooks_that_are_async_in_disguise_are_awaited() -> None:
    """A hook that is an object with an async `__call__`, or a plain function returning a
    coroutine, is awaited to the end: its work is done before the commit."""
    done: list[str] = []

    async def flush() -> None:
        await anyio.lowlevel.checkpoint()
        done.append("coroutine returned by a plain function")

    class Handler:
        def __init__(self, hook: object) -> None:
            self.before_commit = hook

        def __call__(self, record: Record) -> None:
            return None

    async_object = _AsyncCallable()
    for hook in (async_object, flush, lambda: flush()):
        runner = HandlerRunner(Handler(hook), in_thread=True)
        assert runner.before_commit is not None
        await runner.before_commit()
    assert async_object.calls == 1
    assert done == ["coroutine returned by a plain function"] * 2
