"""The breakers compared, each built the same way: one failure opens it for an hour."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable
from typing import Any

import aiobreaker
import purgatory
import pybreaker

from core.resilience import CircuitBreaker, CircuitBreakerConfig

__all__ = [
    "aiobreaker_breaker",
    "fail",
    "fail_async",
    "ok",
    "ok_async",
    "ours",
    "purgatory_guarded",
    "purgatory_guarded_async",
    "pybreaker_breaker",
]

OPEN_FOR_S = 3600.0


def ok() -> int:
    """The guarded call at its cheapest."""
    return 1


async def ok_async() -> int:
    """The guarded coroutine at its cheapest: returns without suspending."""
    return 1


def fail() -> None:
    """The one failure that opens a breaker."""
    raise ConnectionError("dependency down")


async def fail_async() -> None:
    """`fail` as a coroutine function."""
    fail()


def ours(*, opened: bool) -> CircuitBreaker:
    """Our breaker, opened by one failure for an hour if asked."""
    breaker = CircuitBreaker(
        "bench", CircuitBreakerConfig(failure_threshold=1, recovery_timeout_s=OPEN_FOR_S)
    )
    if opened:
        with contextlib.suppress(ConnectionError):
            breaker.call(fail)
    return breaker


def pybreaker_breaker(*, opened: bool) -> pybreaker.CircuitBreaker:
    """pybreaker's breaker with the same threshold and timeout."""
    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=OPEN_FOR_S)
    if opened:
        with contextlib.suppress(ConnectionError, pybreaker.CircuitBreakerError):
            breaker.call(fail)
    return breaker


def aiobreaker_breaker(*, opened: bool) -> aiobreaker.CircuitBreaker:
    """aiobreaker's breaker with the same threshold and timeout."""
    breaker = aiobreaker.CircuitBreaker(
        fail_max=1, timeout_duration=datetime.timedelta(seconds=OPEN_FOR_S)
    )
    if opened:
        with contextlib.suppress(ConnectionError, aiobreaker.CircuitBreakerError):
            breaker.call(fail)
    return breaker


def purgatory_guarded(*, opened: bool) -> Callable[[], int]:
    """`ok` behind purgatory's sync decorator, its breaker opened if asked."""
    factory = purgatory.SyncCircuitBreakerFactory(default_threshold=1, default_ttl=OPEN_FOR_S)
    if opened:
        with contextlib.suppress(ConnectionError), factory.get_breaker("bench"):
            fail()
    guarded: Callable[[], int] = factory("bench")(ok)
    return guarded


def purgatory_guarded_async(*, opened: bool, runner: asyncio.Runner) -> Callable[[], Any]:
    """`ok_async` behind purgatory's async decorator, its breaker opened if asked."""
    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=OPEN_FOR_S)
    if opened:
        with contextlib.suppress(ConnectionError):
            runner.run(factory("bench")(fail_async)())
    return factory("bench")(ok_async)  # type: ignore[no-any-return]
