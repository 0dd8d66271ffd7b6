"""`@with_retry`: retry a sync or async call on failures a retry can fix.

What is retried is decided by the error's category (`core.errors.classify_exception`,
or the `classifier` given):

* TRANSIENT, UNKNOWN: retried after a backoff (`compute_delay`).
* AUTH: retried only if `on_auth_error` is given; it is called with the error
  (and awaited if it returns an awaitable) to refresh the credentials, and the
  retry follows at once: the refresh fixed the cause, and an auth failure says
  nothing about the dependency's load. A wait the error asks for is honoured.
* PERMANENT, CIRCUIT_OPEN: re-raised at once; retrying cannot help, and an open
  circuit must be waited out by whoever supervises the caller.

Each retry also needs the shared `RetryBudget`, if one is given; an exhausted
budget re-raises at once. When attempts run out, the last error is re-raised
unchanged (same object, no wrapping), so its category reaches the supervisor. An
error is never raised while another is being handled, so attempts do not chain
into each other's `__context__`. BaseExceptions that are not Exceptions
(cancellation, KeyboardInterrupt) pass straight through.

Speed: the success path is one `try` around the call (plus `budget.record_call()`
when a budget is given); everything else lives on the failure path. There, a retry
classifies the error, looks its backoff ceiling up (computed once per decorated
function), reads the wait the error asks for (`core.errors.retry_after_of`: a
`retry_after` attribute, else the HTTP Retry-After of the response it carries, capped
at an hour), and leaves no reference
cycle behind (see `_RetryPolicy`); whether to log at DEBUG is decided once per call.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, ParamSpec, TypeVar, cast

import anyio

from core.errors import classify_exception, retry_after_of
from core.resilience.backoff import (
    AUTH_RETRY,
    DEFAULT_RETRY,
    RetryConfig,
    backoff_ceilings,
    compute_delay,
)
from core.resilience.retry_budget import RetryBudget
from core.types import ErrorCategory, ErrorClassifier

__all__ = [
    "AUTH_RETRY",
    "DEFAULT_RETRY",
    "RetryBudget",
    "RetryConfig",
    "compute_delay",
    "with_retry",
]

P = ParamSpec("P")
R = TypeVar("R")

_logger = logging.getLogger(__name__)
_TRANSIENT: Final = ErrorCategory.TRANSIENT
_UNKNOWN: Final = ErrorCategory.UNKNOWN
_AUTH: Final = ErrorCategory.AUTH


def with_retry(
    config: RetryConfig = DEFAULT_RETRY,
    *,
    budget: RetryBudget | None = None,
    on_auth_error: Callable[[Exception], object] | None = None,
    classifier: ErrorClassifier | None = None,
    sleep: Callable[[float], object] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function (sync or async) to retry it as the module docstring says.

    `classifier` replaces the built-in rules; pass `core.errors.compose_classifier(yours)`
    to consult yours first and fall back to them.

    `sleep` replaces `time.sleep` (sync) or `anyio.sleep` (async; a sync `sleep`
    works there too, its result is awaited only if awaitable). A synchronous
    function cannot use an async `sleep` or `on_auth_error`: TypeError.
    """
    classify = classifier.classify if classifier is not None else classify_exception

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = getattr(fn, "__qualname__", repr(fn))
        is_async = inspect.iscoroutinefunction(fn)
        if not is_async:
            for role, helper in (("sleep", sleep), ("on_auth_error", on_auth_error)):
                if inspect.iscoroutinefunction(helper):
                    raise TypeError(f"with_retry: {role} is async but {name} is synchronous")
        policy = _RetryPolicy(
            config=config,
            budget=budget,
            on_auth_error=on_auth_error,
            classify=classify,
            sleep=sleep or (anyio.sleep if is_async else time.sleep),
            name=name,
        )
        if is_async:
            return cast(Callable[P, R], _retrying_async(cast(Callable[..., Any], fn), policy))
        return _retrying_sync(fn, policy)

    return decorate


def _retrying_sync(fn: Callable[P, R], policy: _RetryPolicy) -> Callable[P, R]:
    budget, classify, sleep = policy.budget, policy.classify, policy.sleep
    delay_before_retry, on_auth_error = policy.delay_before_retry, policy.on_auth_error

    @functools.wraps(fn)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> R:
        if budget is not None:
            budget.record_call()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            error = exc
        # The failure path, in this frame rather than a helper's: one call less per retry.
        attempts = 1
        log_retries = _logger.isEnabledFor(logging.DEBUG)
        while True:
            category = classify(error)
            delay = delay_before_retry(error, category, attempts, log_retries)
            if delay is None:
                try:
                    raise error
                finally:
                    del error  # see _RetryPolicy: no reference cycle through this frame
            if category is _AUTH and on_auth_error is not None:
                on_auth_error(error)
            sleep(delay)
            attempts += 1
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                error = exc
            else:
                del error
                return result

    return retrying


def _retrying_async(
    fn: Callable[..., Awaitable[Any]], policy: _RetryPolicy
) -> Callable[..., Awaitable[Any]]:
    budget, classify, sleep = policy.budget, policy.classify, policy.sleep
    delay_before_retry, on_auth_error = policy.delay_before_retry, policy.on_auth_error

    @functools.wraps(fn)
    async def retrying(*args: Any, **kwargs: Any) -> Any:
        if budget is not None:
            budget.record_call()
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            error = exc
        # As in _retrying_sync; awaiting a helper coroutine would cost one more per retry.
        attempts = 1
        log_retries = _logger.isEnabledFor(logging.DEBUG)
        while True:
            category = classify(error)
            delay = delay_before_retry(error, category, attempts, log_retries)
            if delay is None:
                try:
                    raise error
                finally:
                    del error  # see _RetryPolicy: no reference cycle through this frame
            if category is _AUTH and on_auth_error is not None:
                await _maybe_await(on_auth_error(error))
            slept = sleep(delay)
            if slept is not None:
                await _maybe_await(slept)
            attempts += 1
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                error = exc
            else:
                del error
                return result

    return retrying


@dataclasses.dataclass(frozen=True, slots=True)
class _RetryPolicy:
    """What the failure path needs; built once per decorated function.

    A caught error's traceback holds the frame that caught it, so a local still naming
    the error when that frame finishes makes a reference cycle, freed only by the garbage
    collector: every retry would leave one behind (and the collections cost more than the
    retry itself). Hence the `del`s wherever a frame that caught an error lets go of it.
    """

    config: RetryConfig
    budget: RetryBudget | None
    on_auth_error: Callable[[Exception], object] | None
    classify: Callable[[BaseException], ErrorCategory]
    sleep: Callable[[float], object]
    name: str
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    ceilings: tuple[float, ...] = dataclasses.field(init=False)
    """`backoff_ceilings(config)`: a retry looks its ceiling up instead of computing it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ceilings", backoff_ceilings(self.config))

    def delay_before_retry(
        self, error: Exception, category: ErrorCategory, attempts: int, log_retries: bool
    ) -> float | None:
        """Seconds to wait before retrying after `attempts` attempts ended in `error`.

        None means give up: the category is not retried, attempts or budget ran out.
        The backoff is `compute_delay`'s, its ceiling looked up while precomputed.
        """
        # Identity tests, not a set: hashing an Enum member runs Python code.
        if category is _TRANSIENT or category is _UNKNOWN:
            refresh_auth = False
        elif category is _AUTH and self.on_auth_error is not None:
            refresh_auth = True
        else:
            return None
        if attempts >= self.config.max_attempts:
            return None
        if self.budget is not None and not self.budget.try_acquire_retry():
            _logger.debug("%s: retry budget exhausted; giving up after %r", self.name, error)
            return None
        retry_after = retry_after_of(error)
        if refresh_auth:
            delay = retry_after or 0.0
        elif attempts <= len(self.ceilings):
            ceiling = self.ceilings[attempts - 1]
            delay = ceiling * self.rng.random() if self.config.jitter else ceiling
            if retry_after is not None and retry_after > delay:
                delay = retry_after
        else:
            delay = compute_delay(self.config, attempts - 1, retry_after, self.rng)
        if log_retries:
            _logger.debug(
                "%s: attempt %d of %d failed (%s: %r); retrying in %.3fs",
                self.name,
                attempts,
                self.config.max_attempts,
                category.name,
                error,
                delay,
            )
        return delay


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result
