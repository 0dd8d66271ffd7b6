"""Overhead of core.resilience on its hot paths, next to bare-call baselines.

Run: .venv/bin/python scripts/bench/bench_resilience.py [--quick]
Prints ns per operation (min and median of the repeats) and, for the open
breaker, memory and object counts before and after a million rejections.
Async cases drive the coroutine by hand (it never suspends), so they measure
the library, not an event loop.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import timeit
from collections.abc import Callable, Coroutine
from typing import Any

from core.errors import CircuitOpenError
from core.errors import ConnectionError as PipelineConnectionError
from core.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    RetryBudget,
    RetryConfig,
    with_retry,
)

REPEATS = 7


def report(label: str, per_op_ns: list[float]) -> None:
    """Print one line: label, min and median ns per operation."""
    print(
        f"{label:58} min {min(per_op_ns):8.1f} ns   median {statistics.median(per_op_ns):8.1f} ns"
    )


def time_statement(label: str, stmt: str, namespace: dict[str, Any], number: int) -> None:
    """Time a statement with timeit and report ns per execution."""
    runs = timeit.repeat(stmt, globals=namespace, number=number, repeat=REPEATS)
    report(label, [run / number * 1e9 for run in runs])


def time_async(
    label: str, make_loop: Callable[[int], Coroutine[Any, Any, None]], number: int
) -> None:
    """Time a coroutine that performs `number` operations without ever suspending."""
    per_op = []
    for _ in range(REPEATS):
        coroutine = make_loop(number)
        started = timeit.default_timer()
        try:
            coroutine.send(None)
        except StopIteration:
            pass
        else:
            raise RuntimeError(f"{label}: the benchmark coroutine suspended")
        per_op.append((timeit.default_timer() - started) / number * 1e9)
    report(label, per_op)


def no_sleep(_seconds: float) -> None:
    """Stands in for time.sleep so retry schedules cost nothing but their bookkeeping."""


def ok() -> int:
    """The protected call: as cheap as a call can be."""
    return 1


async def ok_async() -> int:
    """The protected coroutine: returns at once."""
    return 1


class FlakyTwice:
    """Fails twice with a TRANSIENT error, then succeeds; again on the next call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls % 3:
            raise PipelineConnectionError("broker went away")
        return 1


def bare_retry_loop(fn: Callable[[], int]) -> int:
    """A hand-written three-attempt loop: the floor for any retry library."""
    for attempt in range(3):
        try:
            return fn()
        except PipelineConnectionError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def bench_retry(number: int) -> None:
    """Retry decorator: success path (sync, async, budgeted) and fail-fail-succeed."""
    retried = with_retry(sleep=no_sleep)(ok)
    budgeted = with_retry(budget=RetryBudget(), sleep=no_sleep)(ok)
    flaky = FlakyTwice()
    flaky_retried = with_retry(RetryConfig(max_attempts=3), sleep=no_sleep)(flaky)
    bare_flaky = FlakyTwice()
    namespace = {
        "ok": ok,
        "retried": retried,
        "budgeted": budgeted,
        "flaky_retried": flaky_retried,
        "bare_retry_loop": bare_retry_loop,
        "bare_flaky": bare_flaky,
    }
    time_statement("baseline: bare call ok()", "ok()", namespace, number)
    time_statement("retry sync success", "retried()", namespace, number)
    time_statement("retry sync success, with RetryBudget", "budgeted()", namespace, number)
    time_statement(
        "baseline: hand loop, fails twice then succeeds",
        "bare_retry_loop(bare_flaky)",
        namespace,
        number // 10,
    )
    time_statement(
        "retry sync, fails twice then succeeds (sleep stubbed)",
        "flaky_retried()",
        namespace,
        number // 10,
    )

    retried_async = with_retry(sleep=no_sleep)(ok_async)

    async def bare_loop(n: int) -> None:
        for _ in range(n):
            await ok_async()

    async def retry_loop(n: int) -> None:
        for _ in range(n):
            await retried_async()

    time_async("baseline: bare await ok_async()", bare_loop, number)
    time_async("retry async success", retry_loop, number)


def bench_breaker(number: int) -> None:
    """Circuit breaker: closed call (sync and async) and open rejection."""
    closed = CircuitBreaker("bench-closed")
    namespace: dict[str, Any] = {"ok": ok, "call": closed.call}
    time_statement("breaker closed call(ok)", "call(ok)", namespace, number)

    async def bare_loop(n: int) -> None:
        for _ in range(n):
            await ok_async()

    async def breaker_loop(n: int) -> None:
        call_async = closed.call_async
        for _ in range(n):
            await call_async(ok_async)

    time_async("baseline: bare await ok_async()", bare_loop, number)
    time_async("breaker closed call_async(ok_async)", breaker_loop, number)

    opened = open_breaker()
    reject_stmt = "try:\n    call(ok)\nexcept CircuitOpenError:\n    pass"
    error_stmt = (
        "try:\n    raise CircuitOpenError('bench-open', 3600.0)\nexcept CircuitOpenError:\n    pass"
    )
    namespace = {"ok": ok, "call": opened.call, "CircuitOpenError": CircuitOpenError}
    time_statement(
        "baseline: raise+catch a new CircuitOpenError (core.errors)", error_stmt, namespace, number
    )
    time_statement("breaker open rejection (raise+catch)", reject_stmt, namespace, number)


def open_breaker() -> CircuitBreaker:
    """A breaker opened by one failure that stays open for an hour."""
    breaker = CircuitBreaker(
        "bench-open", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=3600.0)
    )
    with contextlib.suppress(PipelineConnectionError):
        breaker.call(FlakyTwice())
    return breaker


def resident_kib() -> int:
    """Resident set size of this process in KiB (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * 4


def bench_rejection_growth(rejections: int) -> None:
    """Memory and live objects before and after many rejections: they must not grow."""
    breaker = open_breaker()
    call = breaker.call
    gc.collect()
    objects_before, rss_before = len(gc.get_objects()), resident_kib()
    last_error: CircuitOpenError | None = None
    for _ in range(rejections):
        try:
            call(ok)
        except CircuitOpenError as exc:
            last_error = exc
    gc.collect()
    objects_after, rss_after = len(gc.get_objects()), resident_kib()
    assert last_error is not None
    frames = 0
    traceback = last_error.__traceback__
    while traceback is not None:
        frames, traceback = frames + 1, traceback.tb_next
    print(
        f"{rejections:,} rejections: RSS {rss_before} -> {rss_after} KiB, "
        f"gc objects {objects_before} -> {objects_after}, "
        f"last error: {frames} traceback frames, __context__={last_error.__context__!r}, "
        f"stats.rejections={breaker.stats.rejections:,}"
    )


def main() -> None:
    """Run every benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    options = parser.parse_args()
    number = 20_000 if options.quick else 200_000
    bench_retry(number)
    bench_breaker(number)
    bench_rejection_growth(100_000 if options.quick else 1_000_000)


if __name__ == "__main__":
    main()
