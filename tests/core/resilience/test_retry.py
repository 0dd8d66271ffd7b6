"""@with_retry: what is retried, how often, how long it waits, and what is finally raised."""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import math
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from clocks import ManualClock
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import (
    AuthError,
    CircuitOpenError,
    PermanentError,
    ThrottlingError,
    TokenExpiredError,
    TransientError,
)
from core.resilience import (
    CircuitBreaker,
    CircuitBreakerConfig,
    RetryBudget,
    RetryConfig,
    compute_delay,
    with_retry,
)
from core.resilience.backoff import backoff_ceilings
from core.types import ErrorCategory

NO_JITTER = RetryConfig(max_attempts=4, base_delay_s=0.5, max_delay_s=2.0, jitter=False)


class Script:
    """A callable that raises the scripted errors in turn, then returns its call count."""

    def __init__(self, *errors: Callable[[], BaseException]) -> None:
        self.errors = list(errors)
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.raised: list[BaseException] = []

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.calls.append((args, kwargs))
        if len(self.calls) <= len(self.errors):
            error = self.errors[len(self.calls) - 1]()
            self.raised.append(error)
            raise error
        return len(self.calls)


class AsyncScript(Script):
    """`Script` as a coroutine function."""

    async def run(self, *args: Any, **kwargs: Any) -> int:
        await anyio.lowlevel.checkpoint()
        return self(*args, **kwargs)


def transient() -> TransientError:
    """A fresh TRANSIENT error."""
    return TransientError("dependency down")


def failing(times: int) -> Callable[[], int]:
    """A function that raises a fresh TRANSIENT error `times` times, returns 1, and so on
    round again; unlike Script it keeps no reference to the errors."""
    calls = 0

    def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls % (times + 1):
            raise TransientError("dependency down")
        return 1

    return flaky


def failing_async(times: int) -> Callable[[], Awaitable[int]]:
    """`failing` as a coroutine function."""
    flaky = failing(times)

    async def flaky_async() -> int:
        return flaky()

    return flaky_async


def garbage_cycles_left_by(run: Callable[[], object]) -> int:
    """How many objects the garbage collector frees after `run()`: those in reference cycles."""
    gc.collect()
    gc.disable()
    try:
        run()
        return gc.collect()
    finally:
        gc.enable()


# -- what is retried ---------------------------------------------------------------------


def test_success_is_returned_without_retrying() -> None:
    """A call that succeeds runs once and never sleeps."""
    sleeps: list[float] = []
    script = Script()
    assert with_retry(sleep=sleeps.append)(script)() == 1
    assert sleeps == []


def test_transient_errors_are_retried_until_success() -> None:
    """Two transient failures, then success: three calls, two sleeps, the result returned."""
    sleeps: list[float] = []
    script = Script(transient, transient)
    assert with_retry(sleep=sleeps.append)(script)() == 3
    assert len(sleeps) == 2


def test_unknown_errors_are_retried() -> None:
    """An unclassified error is retried like a transient one."""
    script = Script(lambda: RuntimeError("no idea"))
    assert with_retry(sleep=lambda _: None)(script)() == 2


@pytest.mark.parametrize(
    ("error_type", "make_error"),
    [
        (PermanentError, lambda: PermanentError("bad input")),
        (KeyError, lambda: KeyError("missing field")),
        (CircuitOpenError, lambda: CircuitOpenError("kusto", 12.0)),
        (AuthError, lambda: AuthError("token rejected")),
        (
            ExceptionGroup,
            lambda: ExceptionGroup("batch", [TransientError("down"), PermanentError("bad")]),
        ),
    ],
    ids=["PermanentError", "KeyError", "CircuitOpenError", "AuthError-no-handler", "group"],
)
def test_errors_a_retry_cannot_fix_are_raised_at_once(
    error_type: type[Exception], make_error: Callable[[], Exception]
) -> None:
    """PERMANENT, CIRCUIT_OPEN, and AUTH without on_auth_error: one call, no sleep."""
    sleeps: list[float] = []
    script = Script(make_error)
    with pytest.raises(error_type) as raised:
        with_retry(sleep=sleeps.append)(script)()
    assert raised.value is script.raised[0]
    assert (len(script.calls), sleeps) == (1, [])


def test_a_breakers_rejection_is_not_retried(clock: ManualClock) -> None:
    """A call through an open breaker fails once with CircuitOpenError and is left to wait."""
    breaker = CircuitBreaker("kusto", CircuitBreakerConfig(failure_threshold=1), clock=clock)
    breaker.record_failure(TransientError("down"))
    script = Script()

    @with_retry(sleep=lambda _: None)
    def query() -> int:
        return breaker.call(script)

    with pytest.raises(CircuitOpenError) as raised:
        query()
    assert raised.value.retry_after == breaker.config.recovery_timeout_s
    assert breaker.stats.rejections == 1


def test_base_exceptions_pass_straight_through() -> None:
    """KeyboardInterrupt (like a cancellation) is not retried."""
    script = Script(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        with_retry(sleep=lambda _: None)(script)()
    assert len(script.calls) == 1


def test_custom_classifier_decides_what_is_retried() -> None:
    """A domain classifier can turn an otherwise permanent error into a transient one."""

    class LenientClassifier:
        def classify(self, exc: BaseException) -> ErrorCategory:
            return ErrorCategory.TRANSIENT

    script = Script(lambda: ValueError("flaky parser"))
    assert with_retry(classifier=LenientClassifier(), sleep=lambda _: None)(script)() == 2


# -- attempts and the error finally raised -----------------------------------------------


def test_attempts_are_capped_and_the_last_error_is_raised_unchanged() -> None:
    """After max_attempts failures the last error itself propagates, category intact."""
    script = Script(*[transient] * 5)
    with pytest.raises(TransientError) as raised:
        with_retry(RetryConfig(max_attempts=3), sleep=lambda _: None)(script)()
    assert len(script.calls) == 3
    assert raised.value is script.raised[-1]
    assert raised.value.category is ErrorCategory.TRANSIENT


def test_one_attempt_means_no_retry() -> None:
    """max_attempts=1 makes the decorator a pass-through for failures."""
    script = Script(transient)
    with pytest.raises(TransientError):
        with_retry(RetryConfig(max_attempts=1), sleep=lambda _: None)(script)()
    assert len(script.calls) == 1


def test_attempts_do_not_chain_into_each_other() -> None:
    """The final error carries no __context__ from the earlier attempts."""
    script = Script(transient, transient, transient)
    with pytest.raises(TransientError) as raised:
        with_retry(sleep=lambda _: None)(script)()
    assert raised.value.__context__ is None
    assert raised.value.__cause__ is None


def test_final_traceback_still_points_at_the_failing_code() -> None:
    """The re-raised error's traceback ends where the wrapped function raised it."""
    script = Script(transient, transient, transient)
    with pytest.raises(TransientError) as raised:
        with_retry(sleep=lambda _: None)(script)()
    innermost = traceback.extract_tb(raised.value.__traceback__)[-1]
    assert innermost.name == "__call__"
    assert innermost.filename.endswith("test_retry.py")


@pytest.mark.parametrize("failures", [0, 1, 2, 3])
def test_retries_leave_no_reference_cycles(failures: int) -> None:
    """Successful or exhausted, retried calls free their errors without the garbage collector."""

    def run() -> None:
        retrying = with_retry(RetryConfig(max_attempts=3), sleep=lambda _: None)(failing(failures))
        for _ in range(10):
            with contextlib.suppress(TransientError):
                retrying()

    assert garbage_cycles_left_by(run) == 0


def test_arguments_are_passed_to_every_attempt() -> None:
    """Positional and keyword arguments reach each retry unchanged."""
    script = Script(transient)
    with_retry(sleep=lambda _: None)(script)(1, key="value")
    assert script.calls == [((1,), {"key": "value"})] * 2


@settings(max_examples=40)
@given(max_attempts=st.integers(1, 6), failures=st.integers(0, 8))
def test_calls_made_are_failures_plus_one_capped_by_max_attempts(
    max_attempts: int, failures: int
) -> None:
    """For any failure count the function runs min(max_attempts, failures + 1) times."""
    script = Script(*[transient] * failures)
    retrying = with_retry(RetryConfig(max_attempts=max_attempts), sleep=lambda _: None)(script)
    try:
        retrying()
    except TransientError:
        assert failures >= max_attempts
    else:
        assert failures < max_attempts
    assert len(script.calls) == min(max_attempts, failures + 1)


# -- waits -----------------------------------------------------------------------------------


def test_sleeps_follow_the_backoff_schedule() -> None:
    """Without jitter, the waits are compute_delay for retries 0, 1, 2."""
    sleeps: list[float] = []
    script = Script(transient, transient, transient)
    with_retry(NO_JITTER, sleep=sleeps.append)(script)()
    rng = random.Random(0)
    assert sleeps == [compute_delay(NO_JITTER, n, None, rng) for n in range(3)]


def test_sleeps_past_the_precomputed_ceilings_follow_the_backoff_schedule() -> None:
    """A config retrying more often than backoff_ceilings covers keeps compute_delay's waits."""
    config = RetryConfig(max_attempts=60, base_delay_s=0.001, max_delay_s=1.0, jitter=False)
    sleeps: list[float] = []
    with_retry(config, sleep=sleeps.append)(failing(config.max_attempts - 1))()
    rng = random.Random(0)
    assert sleeps == [compute_delay(config, n, None, rng) for n in range(config.max_attempts - 1)]
    assert len(backoff_ceilings(config)) < len(sleeps)


def test_jittered_sleeps_stay_within_their_ceilings() -> None:
    """With jitter each wait lies between 0 and that retry's backoff ceiling."""
    sleeps: list[float] = []
    config = RetryConfig(max_attempts=4, base_delay_s=0.5, max_delay_s=2.0)
    with_retry(config, sleep=sleeps.append)(Script(transient, transient, transient))()
    ceilings = [compute_delay(NO_JITTER, n, None, random.Random(0)) for n in range(3)]
    assert all(0.0 <= wait <= ceiling for wait, ceiling in zip(sleeps, ceilings, strict=True))


def test_retry_after_is_waited_even_beyond_max_delay() -> None:
    """A throttling error asking for 45 s is waited 45 s, though max_delay_s is 2 s."""
    sleeps: list[float] = []
    script = Script(lambda: ThrottlingError("slow down", retry_after=45.0))
    with_retry(NO_JITTER, sleep=sleeps.append)(script)()
    assert sleeps == [45.0]


@pytest.mark.parametrize("unusable", ["soon", -1.0, math.nan, math.inf, True])
def test_unusable_retry_after_of_a_foreign_error_is_ignored(unusable: object) -> None:
    """A third-party error whose retry_after is not a finite number >= 0 gets plain backoff."""

    class ForeignError(Exception):
        retry_after = unusable

    sleeps: list[float] = []
    with_retry(NO_JITTER, sleep=sleeps.append)(Script(ForeignError))()
    assert sleeps == [compute_delay(NO_JITTER, 0, None, random.Random(0))]


def test_real_sleep_is_used_by_default() -> None:
    """Without a sleep argument a sync function really waits (time.sleep)."""
    config = RetryConfig(max_attempts=2, base_delay_s=0.02, max_delay_s=0.02, jitter=False)
    started = time.monotonic()
    with_retry(config)(Script(transient))()
    assert time.monotonic() - started >= 0.02


# -- AUTH and on_auth_error --------------------------------------------------------------------


def test_auth_error_runs_the_handler_then_retries_at_once() -> None:
    """With on_auth_error, an expired token is refreshed (handler gets the error) and retried."""
    refreshed: list[BaseException] = []
    sleeps: list[float] = []
    script = Script(lambda: TokenExpiredError("token expired"))
    result = with_retry(on_auth_error=refreshed.append, sleep=sleeps.append)(script)()
    assert result == 2
    assert refreshed == script.raised
    assert sleeps == [0.0]


def test_auth_retry_honours_retry_after() -> None:
    """An auth error that asks for a wait gets it, after the refresh."""
    sleeps: list[float] = []
    script = Script(lambda: AuthError("throttled token endpoint", retry_after=3.0))
    with_retry(on_auth_error=lambda _: None, sleep=sleeps.append)(script)()
    assert sleeps == [3.0]


def test_repeated_auth_errors_stop_at_max_attempts() -> None:
    """A refresh that does not help is tried once per attempt, then the auth error propagates."""
    refreshed: list[BaseException] = []
    script = Script(*[lambda: AuthError("still rejected")] * 5)
    with pytest.raises(AuthError):
        with_retry(RetryConfig(max_attempts=3), on_auth_error=refreshed.append)(script)()
    assert len(script.calls) == 3
    assert len(refreshed) == 2


@pytest.mark.parametrize("role", ["sleep", "on_auth_error"])
def test_async_helpers_cannot_serve_a_sync_function(role: str) -> None:
    """Decorating a sync function with an async sleep or on_auth_error is a TypeError."""

    async def helper(_: Any) -> None:
        await anyio.lowlevel.checkpoint()

    with pytest.raises(TypeError, match=role):
        with_retry(**{role: helper})(Script())


# -- the budget ------------------------------------------------------------------------------------


def test_budget_counts_calls_not_attempts(clock: ManualClock) -> None:
    """Four calls (five attempts, one retry) fund ratio x 4 retries, one of them spent."""
    budget = RetryBudget(ratio=0.5, min_retries_per_window=0, clock=clock)
    retrying = with_retry(budget=budget, sleep=lambda _: None)(Script(transient))
    for _ in range(4):
        retrying()
    remaining = 0
    while budget.try_acquire_retry():
        remaining += 1
    assert remaining == 0.5 * 4 - 1


def test_exhausted_budget_raises_at_once(clock: ManualClock) -> None:
    """With no retry left in the budget the first error propagates after one call."""
    budget = RetryBudget(ratio=0.0, min_retries_per_window=1, clock=clock)
    budget.record_retry()
    script = Script(transient)
    with pytest.raises(TransientError):
        with_retry(budget=budget, sleep=lambda _: None)(script)()
    assert len(script.calls) == 1


def test_budget_is_shared_by_everything_using_it(clock: ManualClock) -> None:
    """Two functions on one budget draw from the same allowance."""
    budget = RetryBudget(ratio=0.0, min_retries_per_window=1, clock=clock)
    first, second = Script(transient), Script(transient)
    with_retry(budget=budget, sleep=lambda _: None)(first)()
    with pytest.raises(TransientError):
        with_retry(budget=budget, sleep=lambda _: None)(second)()
    assert (len(first.calls), len(second.calls)) == (2, 1)


# -- wrapping and logging -------------------------------------------------------------------


def test_wrapper_keeps_name_doc_and_signature() -> None:
    """The decorated function looks like the original to introspection."""

    def fetch(url: str, *, timeout: float = 1.0) -> bytes:
        """Fetch a URL."""
        return url.encode()

    wrapped = with_retry()(fetch)
    assert (wrapped.__name__, wrapped.__doc__) == ("fetch", "Fetch a URL.")
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]


def test_each_retry_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """A retry leaves a debug record naming the function, the attempt and the category."""
    with caplog.at_level(logging.DEBUG, logger="core.resilience.retry"):
        with_retry(sleep=lambda _: None)(Script(transient))()
    assert "attempt 1 of 3 failed (TRANSIENT" in caplog.text
    assert "Script" in caplog.text


# -- async ----------------------------------------------------------------------------------------


def test_async_function_stays_a_coroutine_function() -> None:
    """Decorating a coroutine function gives a coroutine function with the same signature."""
    script = AsyncScript()
    wrapped = with_retry()(script.run)
    assert inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(script.run)


@pytest.mark.anyio
async def test_async_transient_errors_are_retried() -> None:
    """An async function failing twice is awaited three times; a sync sleep stub works too."""
    sleeps: list[float] = []
    script = AsyncScript(transient, transient)
    assert await with_retry(NO_JITTER, sleep=sleeps.append)(script.run)("arg") == 3
    assert sleeps == [compute_delay(NO_JITTER, n, None, random.Random(0)) for n in range(2)]
    assert script.calls == [(("arg",), {})] * 3


@pytest.mark.anyio
async def test_async_permanent_error_is_raised_at_once() -> None:
    """An async permanent failure propagates unchanged after one call."""
    script = AsyncScript(lambda: PermanentError("bad input"))
    with pytest.raises(PermanentError) as raised:
        await with_retry(sleep=lambda _: None)(script.run)()
    assert raised.value is script.raised[0]
    assert len(script.calls) == 1


@pytest.mark.anyio
async def test_async_attempts_are_capped_and_last_error_raised() -> None:
    """Async retries stop at max_attempts and re-raise the last error without chaining."""
    script = AsyncScript(*[transient] * 5)
    with pytest.raises(TransientError) as raised:
        await with_retry(RetryConfig(max_attempts=2), sleep=lambda _: None)(script.run)()
    assert raised.value is script.raised[-1]
    assert raised.value.__context__ is None


@pytest.mark.anyio
async def test_async_auth_handler_is_awaited_before_the_retry() -> None:
    """An async on_auth_error (a token refresh) completes before the call is retried."""
    events: list[str] = []
    script = AsyncScript(lambda: TokenExpiredError("expired"))

    async def refresh(error: Exception) -> None:
        await anyio.lowlevel.checkpoint()
        events.append(f"refreshed after call {len(script.calls)}")

    assert await with_retry(on_auth_error=refresh, sleep=lambda _: None)(script.run)() == 2
    assert events == ["refreshed after call 1"]


@pytest.mark.anyio
async def test_async_default_sleep_is_anyio_and_cancellable() -> None:
    """Async retries wait with anyio.sleep, so cancelling the caller stops them mid-wait."""
    script = AsyncScript(*[transient] * 5)
    config = RetryConfig(max_attempts=5, base_delay_s=30.0, max_delay_s=30.0, jitter=False)
    started = time.monotonic()
    with anyio.move_on_after(0.05):
        await with_retry(config)(script.run)()
    assert time.monotonic() - started < 5.0
    assert len(script.calls) == 1


@pytest.mark.anyio
async def test_async_retries_await_an_awaitable_returned_by_a_sync_sleep() -> None:
    """A plain function returning an awaitable as `sleep` has that awaitable awaited."""
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    script = AsyncScript(transient)
    assert await with_retry(NO_JITTER, sleep=lambda seconds: record(seconds))(script.run)() == 2
    assert slept == [compute_delay(NO_JITTER, 0, None, random.Random(0))]


@pytest.mark.anyio
@pytest.mark.parametrize("failures", [0, 1, 2, 3])
async def test_async_retries_leave_no_reference_cycles(failures: int) -> None:
    """Async retried calls, successful or exhausted, free their errors without the collector."""
    retrying = with_retry(RetryConfig(max_attempts=3), sleep=lambda _: None)(
        failing_async(failures)
    )
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            with contextlib.suppress(TransientError):
                await retrying()
        cycles = gc.collect()
    finally:
        gc.enable()
    assert cycles == 0


@pytest.mark.anyio
async def test_async_budget_counts_each_call(clock: ManualClock) -> None:
    """An async decorated call records itself in the budget once."""
    budget = RetryBudget(ratio=1.0, min_retries_per_window=0, clock=clock)
    script = AsyncScript()
    await with_retry(budget=budget)(script.run)()
    assert budget.try_acquire_retry()
    assert not budget.try_acquire_retry()
