"""Retry decorators: ours (core.resilience.with_retry) vs tenacity, stamina and backoff.

Every library gets the same policy: at most 3 attempts, retrying the builtin
ConnectionError (TRANSIENT for us), exponential backoff with jitter as it ships.

* success path: the decorated function returns at once; each library as configured
  for production (no stubs). Baseline: the bare call.
* fails twice then succeeds: the function raises ConnectionError twice, then returns.
  Sleeps are stubbed the way each library allows: ours and tenacity take `sleep=`
  (a no-op); stamina's testing mode (`stamina.set_testing(True, attempts=3)`) zeroes
  its waits but still calls `time.sleep(0)` / `asyncio.sleep(0)` (the async one yields
  to the event loop once per retry); backoff has no sleep hook, so its modules' `time`
  and `asyncio` are swapped for views whose `sleep` is a no-op (backoff's own tests
  monkeypatch `time.sleep` the same way). Retry logging is off in every library, as
  ours logs retries only at DEBUG: stamina's instrumentation hooks (structlog,
  Prometheus) are unset and backoff gets `logger=None`; one more row shows backoff with
  its default logging, which formats the exception on every retry even when the log
  level then drops the record. Baseline: a hand-written 3-attempt loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import backoff
import stamina
import stamina.instrumentation
import tenacity

from core.resilience import RetryConfig, with_retry
from scripts.bench.report import Section, Target, micro_section
from scripts.bench.timing import Case, Role, interleaved

__all__ = ["run"]

ATTEMPTS = 3
SUCCESS_TARGET = {False: Target(250, "backoff", 2_180), True: Target(400, "backoff", 2_391)}
FAILS_TWICE_TARGET = {False: Target(2_000, "backoff", 7_028), True: Target(2_000, "backoff", 8_328)}
"""The issue's targets, and its figures for the fastest peer on these machines."""


def ok() -> int:
    """The retried call at its cheapest."""
    return 1


async def ok_async() -> int:
    """The retried coroutine at its cheapest: returns without suspending."""
    return 1


def no_sleep(_seconds: float) -> None:
    """Stands in for a sleep: the benchmark measures the retry bookkeeping, not the waits."""


async def no_sleep_async(_seconds: float) -> None:
    """`no_sleep` for libraries that await their sleep."""


def fails_twice() -> Callable[[], int]:
    """A function raising ConnectionError on two calls out of three: fail, fail, succeed, again."""
    calls = 0

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls % 3:
            raise ConnectionError("broker went away")
        return 1

    return flaky


def fails_twice_async() -> Callable[[], Awaitable[int]]:
    """`fails_twice` as a coroutine function."""
    flaky = fails_twice()

    async def flaky_async() -> int:
        return flaky()

    return flaky_async


def hand_written_retry(fn: Callable[[], int]) -> int:
    """Three attempts, no waits: the floor for any retry library."""
    for attempt in range(ATTEMPTS):
        try:
            return fn()
        except ConnectionError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def hand_written_retry_async(fn: Callable[[], Any]) -> int:
    """`hand_written_retry` awaiting `fn`."""
    for attempt in range(ATTEMPTS):
        try:
            result: int = await fn()
            return result
        except ConnectionError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def decorators(*, stub_sleep: bool, is_async: bool) -> dict[str, Callable[[Any], Any]]:
    """Each library's retry decorator with the shared policy; sleeps stubbed and retry
    logging off if asked (stamina's is switched off by `sleeps_stubbed`)."""
    sleep: dict[str, Any] = {}
    tenacity_sleep: dict[str, Any] = {}
    backoff_logging: dict[str, Any] = {}
    if stub_sleep:
        sleep = {"sleep": no_sleep}
        tenacity_sleep = {"sleep": no_sleep_async if is_async else no_sleep}
        backoff_logging = {"logger": None}
    return {
        "ours: with_retry": with_retry(RetryConfig(max_attempts=ATTEMPTS), **sleep),
        "tenacity": tenacity.retry(
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=30),
            retry=tenacity.retry_if_exception_type(ConnectionError),
            reraise=True,
            **tenacity_sleep,
        ),
        "stamina": stamina.retry(on=ConnectionError, attempts=ATTEMPTS),
        "backoff": backoff.on_exception(
            backoff.expo, ConnectionError, max_tries=ATTEMPTS, **backoff_logging
        ),
    }


class _WithoutSleep:
    """A module seen through a view whose `sleep` is replaced (see the module docstring)."""

    def __init__(self, module: Any, sleep: Callable[[float], Any]) -> None:
        self._module = module
        self.sleep = sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


_BACKOFF_SLEEPS = (
    ("backoff._sync", "time", no_sleep),
    ("backoff._async", "asyncio", no_sleep_async),
)
"""Where backoff finds its sleep: module, the name it imported, the no-op to see instead."""


@contextlib.contextmanager
def sleeps_stubbed() -> Iterator[None]:
    """Stamina in testing mode and silent, backoff without sleeps, for the duration."""
    saved = []
    for module_name, name, sleep in _BACKOFF_SLEEPS:
        module = importlib.import_module(module_name)
        saved.append((module, name, getattr(module, name)))
        setattr(module, name, _WithoutSleep(getattr(module, name), sleep))
    hooks = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([])
    try:
        with stamina.set_testing(True, attempts=ATTEMPTS):
            yield
    finally:
        stamina.instrumentation.set_on_retry_hooks(hooks)
        for module, name, original in saved:
            setattr(module, name, original)


def _role(name: str) -> Role:
    return "ours" if name.startswith("ours") else "peer"


def success_cases(*, is_async: bool) -> list[Case]:
    """The bare call, then each library's decorated call."""
    fn = ok_async if is_async else ok
    call = "await fn()" if is_async else "fn()"
    cases = [Case("bare call", "baseline", call, {"fn": fn}, is_async)]
    for name, decorate in decorators(stub_sleep=False, is_async=is_async).items():
        cases.append(Case(name, _role(name), call, {"fn": decorate(fn)}, is_async))
    return cases


def fails_twice_cases(*, is_async: bool) -> list[Case]:
    """The hand-written loop, then each library retrying its own failing function."""
    make_flaky: Callable[[], Any] = fails_twice_async if is_async else fails_twice
    if is_async:
        hand = Case(
            "hand-written loop",
            "baseline",
            "await retry(fn)",
            {"retry": hand_written_retry_async, "fn": make_flaky()},
            is_async=True,
        )
    else:
        hand = Case(
            "hand-written loop",
            "baseline",
            "retry(fn)",
            {"retry": hand_written_retry, "fn": make_flaky()},
        )
    call = "await fn()" if is_async else "fn()"
    cases = [hand]
    for name, decorate in decorators(stub_sleep=True, is_async=is_async).items():
        cases.append(Case(name, _role(name), call, {"fn": decorate(make_flaky())}, is_async))
    logging_backoff = backoff.on_exception(backoff.expo, ConnectionError, max_tries=ATTEMPTS)
    cases.append(
        Case(
            "backoff, its default logging",
            "peer",
            call,
            {"fn": logging_backoff(make_flaky())},
            is_async,
        )
    )
    return cases


def run(number: int, repeats: int, runner: asyncio.Runner) -> list[Section]:
    """Both retry benchmarks, sync and async."""
    sections = []
    for is_async in (False, True):
        kind = "async" if is_async else "sync"
        timings = interleaved(
            success_cases(is_async=is_async), number=number, repeats=repeats, runner=runner
        )
        sections.append(
            micro_section(
                f"retry-success-{kind}",
                f"Retry decorator, success path, {kind}",
                timings,
                target=SUCCESS_TARGET[is_async],
                what=f"retry decorator, success path, {kind}",
                notes=[f"{number:,} calls per round; 3 attempts, ConnectionError retried."],
            )
        )
    for is_async in (False, True):
        kind = "async" if is_async else "sync"
        with sleeps_stubbed():
            timings = interleaved(
                fails_twice_cases(is_async=is_async),
                number=max(1, number // 10),
                repeats=repeats,
                runner=runner,
            )
        sections.append(
            micro_section(
                f"retry-fails-twice-{kind}",
                f"Retry, fails twice then succeeds, sleeps stubbed, {kind}",
                timings,
                target=FAILS_TWICE_TARGET[is_async],
                what=f"retry, fails twice then succeeds, sleeps stubbed, {kind}",
                notes=[
                    f"{max(1, number // 10):,} calls (3 attempts each) per round; ns per call.",
                    "Sleeps: ours and tenacity `sleep=` no-op; stamina `set_testing(True, "
                    "attempts=3)` (zero waits, still calls time.sleep(0) / asyncio.sleep(0)); "
                    "backoff's `time.sleep` / `asyncio.sleep` replaced by no-ops. Retry "
                    "logging off (stamina's hooks unset, backoff `logger=None`) except in the "
                    "row that says otherwise.",
                ],
            )
        )
    return sections
