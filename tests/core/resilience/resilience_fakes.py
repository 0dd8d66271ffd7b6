"""Test doubles for core.resilience: calls held in flight by hand.

`PendingCall` drives `CircuitBreaker.call_async` without an event loop: the
coroutine is advanced with `send`, so a test can admit several calls, keep them
in flight and decide each one's outcome, deterministically and in one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from core.resilience import CircuitBreaker, CircuitState


class Cancelled(BaseException):
    """Stands in for an event loop's cancellation exception (a BaseException)."""


class _SuspendOnce:
    def __await__(self) -> Generator[None, None, None]:
        yield


class PendingCall:
    """A `call_async` admitted by the breaker and suspended until the test finishes it."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        """Start the call; raises CircuitOpenError at once if the breaker rejects it."""
        self._outcome: BaseException | None = None
        self._coroutine = breaker.call_async(self._body)
        self._coroutine.send(None)

    async def _body(self) -> str:
        await _SuspendOnce()
        if self._outcome is not None:
            raise self._outcome
        return "done"

    def succeed(self) -> Any:
        """Let the call return; gives its result."""
        try:
            self._coroutine.send(None)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("the pending call suspended twice")

    def fail(self, error: BaseException) -> BaseException:
        """Let the call raise `error`; gives what propagated out of the breaker."""
        self._outcome = error
        try:
            self._coroutine.send(None)
        except BaseException as propagated:
            return propagated
        raise AssertionError("the pending call did not raise")

    def cancel(self) -> BaseException:
        """Cancel the call as an event loop would; gives what propagated."""
        try:
            self._coroutine.throw(Cancelled())
        except BaseException as propagated:
            return propagated
        raise AssertionError("the pending call swallowed its cancellation")


class TransitionLog:
    """A breaker listener that records every (name, old, new) it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, CircuitState, CircuitState]] = []

    def __call__(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self.events.append((name, old, new))

    @property
    def transitions(self) -> list[tuple[CircuitState, CircuitState]]:
        """The (old, new) pairs, without the breaker name."""
        return [(old, new) for _, old, new in self.events]


def failing(make_error: Callable[[], BaseException]) -> Callable[[], Any]:
    """A function that raises a fresh `make_error()` each time it is called."""

    def fail() -> Any:
        raise make_error()

    return fail
