"""Where a supervisor gets time from, so tests can run it in virtual time.

Every wait of the runtime (restart delays, shutdown timeouts) goes through the
injected `sleep`, and every timestamp through the injected `clock`; by default
they are anyio's, i.e. the event loop's monotonic clock.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["Clock", "Sleep", "run_with_timeout"]

Clock = Callable[[], float]
"""Monotonic seconds."""

Sleep = Callable[[float], Awaitable[None]]
"""Wait the given number of seconds (on the same time base as the clock)."""


async def run_with_timeout(
    work: Callable[[], Awaitable[object]], seconds: float, sleep: Sleep
) -> bool:
    """Await `work()`, cancelling it after `seconds` of `sleep`; True if it finished."""
    finished = False
    async with anyio.create_task_group() as group:
        if math.isfinite(seconds):

            async def expire() -> None:
                await sleep(seconds)
                group.cancel_scope.cancel()

            group.start_soon(expire)
        await work()
        finished = True
        group.cancel_scope.cancel()
    return finished
