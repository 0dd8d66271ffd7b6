"""Keeps a token for every registered scope in the TokenCache, refreshed ahead of expiry.

Why an actor and not the credential's own cache: the Azure CLI credential caches
nothing, and the MSAL-based ones refresh only 5 minutes before expiry and hide a
failed early refresh. So this actor asks the provider with `force_refresh=True`
at `lead_time` before expiry (default: 5 minutes before the cache stops serving
the token, i.e. 45 minutes into Azure AD's usual 60-minute token with the cache's
10-minute margin), and the consumer's OAUTHBEARER callback only ever reads the cache.

* Requests: a `RefreshRequest` (after the broker rejected a token) triggers a
  refresh now; requests for a scope that arrive while its refresh is in flight
  share it, and each request's `done` is set when that refresh finished. While a
  scope backs off after a failure, requests wait for the next attempt: asking
  harder does not make a failing token endpoint recover sooner. Requests for an
  unregistered scope are refused (logged, `done` set): the wiring registers scopes.
* Failures are judged by `core.errors.classify_exception`. AUTH (rejected
  credentials) and PERMANENT (a setup mistake) end the run at once with a
  `TokenRefreshError` of that category: retrying cannot help, the supervisor
  decides. Anything else is logged and retried after `core.resilience`'s
  backoff (full jitter; a `retry_after` the error carries is a floor) for as
  long as the cached token is still valid; once it has expired and
  `retry.max_attempts` attempts in a row failed, the run ends with a TRANSIENT
  `TokenRefreshError`.
* The blocking provider call runs in a worker thread, bounded by
  `attempt_timeout`. On timeout or shutdown the thread is abandoned (it cannot be
  interrupted) so a hung token endpoint never blocks the event loop or the
  shutdown; a late result only lands in the provider's cache (a valid token).
* `run` reports started once every registered scope has a token: fetched by this
  run, or left fresh in the cache by a previous one (a restart does not refetch).
  A fetched token that expires within the cache's margin still counts (the
  alternative, never starting, hides the cause); it is logged as
  `token_not_servable` and replaced after `min_interval`.
* Nothing is announced: the cache is the one source of truth and its readers pull
  (the OAUTHBEARER provider on every authentication, /readyz through `stats()`), so
  no reader can miss or lag behind a notification.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final, Protocol

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.messages import RefreshRequest
from actors.token_refresher.schedule import next_refresh_at
from actors.token_refresher.scope import ScopeRefreshStats, ScopeState
from core.auth.token_cache import CachedToken, Clock, TokenCache
from core.errors import PipelineError, classify_exception, most_severe
from core.logging.error_text import error_text
from core.resilience.backoff import RetryConfig, compute_delay
from core.types import ErrorCategory

__all__ = [
    "DEFAULT_EXTRA_LEAD",
    "REFRESH_RETRY",
    "ExpiringTokenSource",
    "ScopeRefreshStats",
    "TokenRefreshError",
    "TokenRefresherActor",
    "ask_for_fresh_token",
]

DEFAULT_EXTRA_LEAD: Final = timedelta(minutes=5)
"""How long before the cache stops serving a token the refresher replaces it, by default."""

REFRESH_RETRY: Final = RetryConfig(max_attempts=5, base_delay_s=1.0, max_delay_s=60.0)
"""Waits of up to 1, 2, 4, 8 s, then up to a minute; give up after 5 failures in a row
once no valid token is left (about 15 s without any token at start-up)."""

_UNRECOVERABLE: Final = frozenset({ErrorCategory.AUTH, ErrorCategory.PERMANENT})

_logger = logging.getLogger("actors.token_refresher")


class ExpiringTokenSource(Protocol):
    """Where tokens come from: `core.auth.AzureCredentialProvider` (blocking calls)."""

    def get_token_with_expiry(self, scope: str, *, force_refresh: bool = False) -> CachedToken:
        """A token for `scope` and its expiry; `force_refresh` bypasses any cache."""
        ...


class TokenRefreshError(PipelineError):
    """The refresher gave up on a scope; `category` tells the supervisor what to do."""

    def __init__(self, scope: str, category: ErrorCategory, cause: BaseException) -> None:
        super().__init__(
            f"could not refresh the token for {scope} ({category.value}): {error_text(cause)}",
            category=category,
            context={"scope": scope},
        )
        self.scope = scope


class TokenRefresherActor:
    """Refreshes every registered scope ahead of expiry (see the module docstring)."""

    def __init__(
        self,
        provider: ExpiringTokenSource,
        cache: TokenCache,
        scopes: Iterable[str],
        requests: MemoryObjectReceiveStream[RefreshRequest],
        *,
        lead_time: timedelta | None = None,
        min_interval: timedelta = timedelta(seconds=10),
        retry: RetryConfig = REFRESH_RETRY,
        attempt_timeout: float = 30.0,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        """`lead_time` defaults to the cache's margin plus `DEFAULT_EXTRA_LEAD`.

        It may not be shorter than the margin; equal to it, a token is replaced just as
        the cache stops serving it, so a consumer may briefly find none (and ask).

        `clock` defaults to the cache's, so both agree on what "expired" means;
        tests inject `clock` and `sleep` to run in virtual time, `rng` for the jitter.
        """
        lead = lead_time if lead_time is not None else cache.refresh_margin + DEFAULT_EXTRA_LEAD
        if lead < cache.refresh_margin:
            raise ValueError(
                f"lead_time {lead} is shorter than the cache's refresh margin "
                f"{cache.refresh_margin}: tokens would stop being served before being refreshed"
            )
        if not attempt_timeout > 0:
            raise ValueError(f"attempt_timeout must be > 0 seconds, got {attempt_timeout!r}")
        if min_interval < timedelta(0):
            raise ValueError(f"min_interval must not be negative, got {min_interval}")
        self._provider = provider
        self._cache = cache
        self._requests = requests
        self._lead_time = lead
        self._min_interval = min_interval
        self._retry = retry
        self._attempt_timeout = attempt_timeout
        self._clock: Clock = clock if clock is not None else cache.now
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._scopes = {scope: ScopeState(scope) for scope in dict.fromkeys(scopes)}

    @property
    def scopes(self) -> list[str]:
        """The registered scopes, in registration order."""
        return list(self._scopes)

    def stats(self) -> dict[str, ScopeRefreshStats]:
        """A snapshot per scope: expiry, freshness, refreshes, failures, last error category."""
        now = self._clock()
        return {scope: self._stats_of(state, now) for scope, state in self._scopes.items()}

    def all_fresh(self) -> bool:
        """Every registered scope has a token the cache serves (the /readyz check)."""
        return all(self._cache.fresh_entry(scope) is not None for scope in self._scopes)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep every scope fresh and answer requests until cancelled or a scope is given up."""
        for state in self._scopes.values():
            self._prepare(state)
        try:
            async with anyio.create_task_group() as tasks:
                for state in self._scopes.values():
                    tasks.start_soon(self._keep_fresh, state)
                tasks.start_soon(self._serve_requests)
                for state in self._scopes.values():
                    await state.has_token.wait()
                task_status.started()
        except BaseExceptionGroup as group:
            raise _decisive_error(group)  # noqa: B904 (the error keeps its own cause)
        finally:
            for state in self._scopes.values():
                state.release_waiting()

    # -- scheduling ----------------------------------------------------------------------------

    def _prepare(self, state: ScopeState) -> None:
        now = self._clock()
        entry = self._cache.get_entry(state.scope)
        due_at = entry.expires_on - self._lead_time if entry is not None else now
        state.start_run(due_at, has_token=self._serves(entry))

    def _serves(self, entry: CachedToken | None) -> bool:
        return entry is not None and entry.is_fresh(self._clock(), self._cache.refresh_margin)

    async def _keep_fresh(self, state: ScopeState) -> None:
        while True:
            await self._wait_until_due(state)
            await self._attempt(state)

    async def _wait_until_due(self, state: ScopeState) -> None:
        while not (state.requested and not state.backing_off):
            delay = (state.due_at - self._clock()).total_seconds() if state.due_at else 0.0
            if delay <= 0:
                return
            await self._sleep_unless_woken(state, delay)

    async def _sleep_unless_woken(self, state: ScopeState, seconds: float) -> None:
        """Sleep `seconds`, or less if a request sets `state.wake` first."""
        wake = state.wake
        async with anyio.create_task_group() as timer:

            async def sleep_then_wake() -> None:
                await self._sleep(seconds)
                wake.set()

            timer.start_soon(sleep_then_wake)
            await wake.wait()
            timer.cancel_scope.cancel()
        state.wake = anyio.Event()

    async def _serve_requests(self) -> None:
        async for request in self._requests:
            state = self._scopes.get(request.scope)
            if state is None:
                _logger.warning(
                    "refresh requested for unregistered scope %s; register it in the wiring",
                    request.scope,
                    extra={"event": "token_refresh_refused", "scope": request.scope},
                )
                request.done.set()
                continue
            _logger.info(
                "token refresh requested for %s: %s",
                request.scope,
                request.reason,
                extra={"event": "token_refresh_requested", "scope": request.scope},
            )
            state.add_request(request)

    # -- one attempt ---------------------------------------------------------------------------

    async def _attempt(self, state: ScopeState) -> None:
        state.begin_attempt()
        try:
            token = await self._fetch(state.scope)
        except Exception as exc:
            self._on_failure(state, exc)
        else:
            self._on_success(state, token)
        finally:
            state.finish_attempt()

    async def _fetch(self, scope: str) -> CachedToken:
        fetch = partial(self._provider.get_token_with_expiry, scope, force_refresh=True)
        with anyio.fail_after(self._attempt_timeout):
            return await anyio.to_thread.run_sync(fetch, abandon_on_cancel=True)

    def _on_success(self, state: ScopeState, fetched: CachedToken) -> None:
        now = self._clock()
        stored = self._cache.set(state.scope, fetched.token, fetched.expires_on)
        refresh_at = next_refresh_at(
            stored,
            now,
            lead_time=self._lead_time,
            serve_margin=self._cache.refresh_margin,
            min_interval=self._min_interval,
        )
        state.record_success(now, refresh_at)
        seconds_left = stored.seconds_to_expiry(now)
        _logger.info(
            "token for %s refreshed; expires in %.0f s, next refresh at %s",
            state.scope,
            seconds_left,
            refresh_at.isoformat(),
            extra=_fields("token_refreshed", state, seconds_to_expiry=round(seconds_left, 3)),
        )
        if not self._serves(stored):
            _logger.warning(
                "token for %s expires within the cache's margin of %s: it will not be served",
                state.scope,
                self._cache.refresh_margin,
                extra=_fields("token_not_servable", state, seconds_to_expiry=seconds_left),
            )

    def _on_failure(self, state: ScopeState, exc: Exception) -> None:
        category = classify_exception(exc)
        state.record_failure(category)
        now = self._clock()
        entry = self._cache.get_entry(state.scope)
        still_valid = entry is not None and entry.expires_on > now
        fields = _fields(
            "token_refresh_failed",
            state,
            category=category.value,
            attempt=state.consecutive_failures,
            token_still_valid=still_valid,
        )
        if category in _UNRECOVERABLE:
            _logger.error("token refresh for %s failed: %s", state.scope, exc, extra=fields)
            raise TokenRefreshError(state.scope, category, exc) from exc
        if not still_valid and state.consecutive_failures >= self._retry.max_attempts:
            _logger.error(
                "token refresh for %s failed %d times in a row and no valid token is left: %s",
                state.scope,
                state.consecutive_failures,
                exc,
                extra=fields,
            )
            raise TokenRefreshError(state.scope, ErrorCategory.TRANSIENT, exc) from exc
        retry_after = exc.retry_after if isinstance(exc, PipelineError) else None
        delay = compute_delay(self._retry, state.consecutive_failures - 1, retry_after, self._rng)
        state.due_at = now + timedelta(seconds=delay)
        _logger.warning(
            "token refresh for %s failed (%s); retrying in %.1f s: %s",
            state.scope,
            category.value,
            delay,
            exc,
            extra={**fields, "retry_in": round(delay, 3)},
        )

    def _stats_of(self, state: ScopeState, now: datetime) -> ScopeRefreshStats:
        entry = self._cache.get_entry(state.scope)
        return ScopeRefreshStats(
            scope=state.scope,
            fresh=self._cache.fresh_entry(state.scope) is not None,
            seconds_to_expiry=entry.seconds_to_expiry(now) if entry is not None else None,
            refresh_count=state.refresh_count,
            failure_count=state.failure_count,
            consecutive_failures=state.consecutive_failures,
            last_error_category=state.last_error_category,
            last_refreshed_at=state.last_refreshed_at,
            next_refresh_at=state.due_at,
        )


async def ask_for_fresh_token(
    requests: MemoryObjectSendStream[RefreshRequest], scope: str, reason: str
) -> None:
    """Ask the refresher for a fresh token for `scope` and wait until it has tried.

    Made for the supervisor's `on_auth_failure` hook (the broker rejected a token:
    refresh before restarting the child). Bound the wait with `anyio.move_on_after`,
    and never wait on it when the failed child *is* the refresher: the hook runs
    before the restart, so nobody would answer.
    """
    request = RefreshRequest(scope, reason)
    await requests.send(request)
    await request.done.wait()


def _fields(event: str, state: ScopeState, **extra: Any) -> Mapping[str, Any]:
    return {"event": event, "scope": state.scope, **extra}


def _decisive_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The most severe error of the run's task group, unwrapped.

    Scopes can fail together (one bad secret serves them all); each failure was
    logged when it happened, and the supervisor needs one error to decide on.
    """
    errors = [error for error in group.exceptions if isinstance(error, Exception)]
    if not errors:
        return group
    worst = most_severe([classify_exception(error) for error in errors])
    return next(error for error in errors if classify_exception(error) is worst)
