"""Helpers shared by the consumer actor's broker tests: settings, polling, running an actor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from actors.consumer import ConsumerSettings, KafkaConsumerActor
from core.resilience.backoff import RetryConfig
from supervisor.testing import unique_name

POLL_INTERVAL = 0.02
FAST_RETRY = RetryConfig(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01)


def consumer_settings(bootstrap: str, topic: str, **overrides: Any) -> ConsumerSettings:
    """Settings for tests: quick group joins and commits, fast retries, a fresh group."""
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topics": (topic,),
        "group_id": unique_name("group"),
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 200,
        "commit_interval_s": 0.1,
        "retry": FAST_RETRY,
    }
    return ConsumerSettings(**(values | overrides))


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll `condition` (state another task changes) until it holds; fail after `seconds`."""
    for _ in range(int(seconds / POLL_INTERVAL)):
        if condition():
            return
        await anyio.sleep(POLL_INTERVAL)
    pytest.fail(f"condition still false after {seconds}s")


@asynccontextmanager
async def running(actor: KafkaConsumerActor) -> AsyncIterator[None]:
    """Run `actor` in the background for the block, then stop it gracefully."""
    async with anyio.create_task_group() as tasks:
        await tasks.start(actor.run)
        try:
            yield
        finally:
            actor.stop()
