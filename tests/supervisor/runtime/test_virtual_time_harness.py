"""The virtual-time loop used by the supervisor tests jumps over sleeps instantly and in order."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from supervision_harness import virtual_time_backend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Run on asyncio in virtual time."""
    return virtual_time_backend()


async def test_sleeps_take_virtual_time_only() -> None:
    """An hour of concurrent sleeps passes in well under a real second, waking in order."""
    woke: list[tuple[str, float]] = []
    real_start = time.monotonic()

    async def sleeper(name: str, seconds: float) -> None:
        await anyio.sleep(seconds)
        woke.append((name, anyio.current_time()))

    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, "late", 3600.0)
        group.start_soon(sleeper, "early", 1.5)
    assert woke == [("early", 1.5), ("late", 3600.0)]
    assert time.monotonic() - real_start < 1.0


async def test_timeouts_fire_in_virtual_time() -> None:
    """move_on_after expires at exactly its virtual deadline."""
    with anyio.move_on_after(2.0) as scope:
        await anyio.sleep(10.0)
    assert scope.cancelled_caught
    assert anyio.current_time() == 2.0
