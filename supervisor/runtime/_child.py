"""One start of a child ("incarnation"): its task, its task status, and how it is stopped.

The stop protocol, in order, within the child's `shutdown_timeout`:

1. If the child has reported started and the object behind its `run` has a
   `stop()` method (sync or async), `stop()` is called; the child is expected
   to return from `run` by itself (flush, commit, close) soon after.
2. The supervisor waits for the child's `run` to end, until `shutdown_timeout`
   (counted from the start of step 1) has passed.
3. If it is still running, its cancel scope is cancelled (anyio cancellation:
   `finally` blocks run, shielded cleanup may finish) and the supervisor waits
   for it to end.

A child without a `stop()` method, or one that has not reported started yet,
or with `shutdown_timeout=0`, goes straight to step 3. An exception raised by
`stop()` or by the child while stopping is returned to the supervisor, which
logs it and passes it on (see `Supervisor`).

Each child task runs shielded from cancellation of the supervisor's own task,
so a supervisor that is cancelled still stops its children this way, in
reverse start order, rather than all of them being cancelled at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import anyio

from supervisor.runtime._clock import Sleep, run_with_timeout
from supervisor.runtime._spec import ChildSpec, StopHook

__all__ = ["Incarnation"]


class Incarnation:
    """One run of a child, from spawn to end; it is also the child's `task_status`."""

    def __init__(
        self,
        spec: ChildSpec,
        *,
        on_started: Callable[[Incarnation], None],
        on_ended: Callable[[Incarnation], None],
    ) -> None:
        self.spec = spec
        self.has_started = False
        self.error: Exception | None = None
        """What the child raised, if it did."""
        self.timed_out = False
        """True when the child had a `stop()` but did not end within its timeout."""
        self.ended = False
        self._ended_event: anyio.Event | None = None  # made only if someone waits
        # Shielded: only the supervisor's own cancel() reaches the child, never an outer scope's.
        self._scope = anyio.CancelScope(shield=True)
        self._stop_hook: StopHook | None = None
        self._on_started = on_started
        self._on_ended = on_ended

    def started(self, value: None = None) -> None:
        """Called by the child once it is ready (the anyio `TaskStatus` protocol)."""
        if self.has_started:
            raise RuntimeError("called 'started' twice on the same task status")
        self.has_started = True
        self._on_started(self)

    async def run(self) -> None:
        """The task body: build and run the child once, recording how it ended."""
        try:
            with self._scope:
                try:
                    run, self._stop_hook = self.spec.instantiate()
                    await run(task_status=self)
                except Exception as exc:
                    self.error = exc
        except BaseException:
            # KeyboardInterrupt and the like end the whole supervisor, not just this child.
            self._mark_ended()
            raise
        self._mark_ended()
        self._on_ended(self)

    async def wait_ended(self) -> None:
        """Return once the child's run has ended."""
        if not self.ended:
            if self._ended_event is None:
                self._ended_event = anyio.Event()
            await self._ended_event.wait()

    def _mark_ended(self) -> None:
        self.ended = True
        if self._ended_event is not None:
            self._ended_event.set()

    async def stop(self, sleep: Sleep) -> list[Exception]:
        """Stop the child by the protocol above; the errors raised on the way, if any."""
        errors: list[Exception] = []
        hook = self._stop_hook if self.has_started else None
        timeout = self.spec.shutdown_timeout
        if hook is not None and timeout > 0 and not self.ended:

            async def stop_gracefully() -> None:
                try:
                    result = hook()
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    errors.append(exc)
                    return
                await self.wait_ended()

            await run_with_timeout(stop_gracefully, timeout, sleep)
            self.timed_out = not self.ended
        if not self.ended:
            self._scope.cancel()
            await self.wait_ended()
        if self.error is not None:
            errors.append(self.error)
        return errors
