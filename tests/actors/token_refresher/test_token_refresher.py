"""TokenRefresherActor in virtual time, over the real AzureCredentialProvider and TokenCache.

Only Azure AD's token endpoint is simulated (`FakeAzureAd`, an azure-core
TokenCredential): it cannot run here. Its failures are the exceptions azure-identity
raises (ServiceRequestError for a network outage, ClientAuthenticationError for a
rejected secret), so the provider's real error mapping classifies them.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import RefreshRequest
from actors.token_refresher import TokenRefresherActor, TokenRefreshError
from core.auth.credentials import AzureCredentialProvider
from core.auth.token_cache import TokenCache
from core.resilience.backoff import RetryConfig
from core.types import ErrorCategory

pytestmark = pytest.mark.anyio

SCOPE = "https://eventhubs.azure.net/.default"
OTHER_SCOPE = "https://storage.azure.com/.default"
MARGIN = timedelta(minutes=10)
LEAD = timedelta(minutes=15)
MIN_INTERVAL = timedelta(seconds=10)
RETRY = RetryConfig(max_attempts=3, base_delay_s=1.0, max_delay_s=60.0)
START = datetime(2030, 1, 1, tzinfo=UTC)


class VirtualTime:
    """A clock and a sleep that only move when the test says so."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[datetime, anyio.Event]] = []
        self._changed = anyio.Event()

    def now(self) -> datetime:
        """The virtual time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Return once virtual time has reached now + `seconds` (rounded up to 1 µs)."""
        sleeper = (self._now + timedelta(microseconds=math.ceil(seconds * 1e6)), anyio.Event())
        self._sleepers.append(sleeper)
        self.poke()
        try:
            await sleeper[1].wait()
        finally:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)
                self.poke()

    def poke(self) -> None:
        """Tell `settle` that something changed."""
        self._changed.set()
        self._changed = anyio.Event()

    async def settle(self, sleepers: int, done: Callable[[], bool]) -> None:
        """Wait until `sleepers` tasks sleep (the actor is idle) or `done()`."""
        with anyio.fail_after(5):
            while len(self._sleepers) < sleepers and not done():
                await self._changed.wait()

    async def advance(self, delta: timedelta, sleepers: int, done: Callable[[], bool]) -> None:
        """Move time forward by `delta`, waking each sleeper at its deadline, in order."""
        target = self._now + delta
        while not done():
            due = [s for s in self._sleepers if s[0] <= target]
            if not due:
                break
            self._now = max(self._now, min(deadline for deadline, _ in due))
            for sleeper in [s for s in self._sleepers if s[0] <= self._now]:
                self._sleepers.remove(sleeper)
                sleeper[1].set()
            await self.settle(sleepers, done)
        self._now = max(self._now, target)


@dataclass
class FakeAzureAd:
    """Azure AD's token endpoint, scripted: token lifetimes in turn, and outages on demand."""

    clock: Callable[[], datetime]
    lifetimes: list[timedelta]
    outage: Exception | None = None
    calls: int = 0
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def get_token(self, *scopes: str, **options: Any) -> AccessToken:
        """A token living the next scripted lifetime, or the current outage's error."""
        self.gate.wait(timeout=5)
        lifetime = self.lifetimes[self.calls % len(self.lifetimes)]
        self.calls += 1
        if self.outage is not None:
            raise self.outage
        expires_on = self.clock() + lifetime
        return AccessToken(f"token-{self.calls}-{scopes[0]}", int(expires_on.timestamp()))


def network_outage() -> Exception:
    """What azure-identity raises when the token endpoint cannot be reached."""
    return ServiceRequestError("Connection refused")


def rejected_secret() -> Exception:
    """What azure-identity raises when Azure AD rejects the client secret."""
    return ClientAuthenticationError("AADSTS7000215: Invalid client secret provided.")


@dataclass
class Harness:
    """A refresher running in virtual time, with everything a test looks at."""

    time: VirtualTime
    azure_ad: FakeAzureAd
    cache: TokenCache
    actor: TokenRefresherActor
    requests: MemoryObjectSendStream[RefreshRequest]
    inbox: MemoryObjectReceiveStream[RefreshRequest]
    scopes: list[str]
    error: BaseException | None = None
    failed_at: datetime | None = None
    outage_at_failure: Exception | None = None
    finished: bool = False

    async def run_actor(self) -> None:
        """Run the actor, recording how and when it ended."""
        try:
            await self.actor.run()
        except Exception as exc:
            self.error, self.failed_at = exc, self.time.now()
            self.outage_at_failure = self.azure_ad.outage
        finally:
            self.finished = True
            self.time.poke()

    async def settle(self) -> None:
        """Let the actor finish what it is doing until every scope sleeps again."""
        await self.time.settle(len(self.scopes), lambda: self.finished)

    async def advance(self, delta: timedelta) -> None:
        """Move virtual time forward, letting every refresh due on the way happen."""
        await self.time.advance(delta, len(self.scopes), lambda: self.finished)


def build_harness(
    lifetimes: list[timedelta],
    scopes: list[str] | None = None,
    *,
    outage: Exception | None = None,
    rng: random.Random | None = None,
) -> Harness:
    """A refresher over the real provider and cache in virtual time, not yet running."""
    time = VirtualTime(START)
    azure_ad = FakeAzureAd(time.now, lifetimes, outage=outage)
    cache = TokenCache(refresh_margin=MARGIN, clock=time.now)
    provider = AzureCredentialProvider(lambda: azure_ad, method="client_secret", cache=cache)
    send, receive = anyio.create_memory_object_stream[RefreshRequest](16)
    scopes = scopes or [SCOPE]
    actor = TokenRefresherActor(
        provider,
        cache,
        scopes,
        receive,
        lead_time=LEAD,
        min_interval=MIN_INTERVAL,
        retry=RETRY,
        sleep=time.sleep,
        rng=rng or random.Random(0),
    )
    return Harness(time, azure_ad, cache, actor, send, receive, scopes)


@asynccontextmanager
async def running_refresher(
    lifetimes: list[timedelta],
    scopes: list[str] | None = None,
    *,
    outage: Exception | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[Harness]:
    """`build_harness`, running until every scope waits for its next refresh; stopped on exit."""
    harness = build_harness(lifetimes, scopes, outage=outage, rng=rng)
    with harness.requests, harness.inbox:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(harness.run_actor)
            await harness.settle()
            yield harness
            tasks.cancel_scope.cancel()


async def test_refreshes_lead_time_before_expiry_and_not_earlier() -> None:
    """A token is replaced exactly `lead_time` before it expires, while the old one is served."""
    lifetime = timedelta(hours=1)
    async with running_refresher([lifetime]) as harness:
        first = harness.cache.get(SCOPE)
        refresh_due = lifetime - LEAD

        await harness.advance(refresh_due - timedelta(seconds=1))
        assert harness.azure_ad.calls == 1
        assert harness.cache.get(SCOPE) == first

        await harness.advance(timedelta(seconds=1))
        assert harness.azure_ad.calls == 2
        assert harness.cache.get(SCOPE) not in (None, first)
        stats = harness.actor.stats()[SCOPE]
        assert stats.refresh_count == 2
        assert stats.next_refresh_at == harness.time.now() + refresh_due


async def test_started_is_reported_once_every_scope_has_a_token() -> None:
    """`task_status.started()` comes only after the first token of every scope is cached."""
    harness = build_harness([timedelta(hours=1)], [SCOPE, OTHER_SCOPE])
    harness.azure_ad.gate.clear()
    with harness.requests, harness.inbox:
        async with anyio.create_task_group() as tasks:
            threading.Timer(0.05, harness.azure_ad.gate.set).start()
            with anyio.fail_after(5):
                await tasks.start(harness.actor.run)
            assert harness.cache.get(SCOPE) is not None
            assert harness.cache.get(OTHER_SCOPE) is not None
            assert harness.actor.all_fresh()
            tasks.cancel_scope.cancel()


async def test_concurrent_requests_share_one_refresh_and_all_are_released() -> None:
    """N requests for a scope while its refresh is in flight cost one token request; all done."""
    async with running_refresher([timedelta(hours=1)]) as harness:
        calls_before = harness.azure_ad.calls
        harness.azure_ad.gate.clear()
        requests = [RefreshRequest(SCOPE, reason=f"broker rejected token #{n}") for n in range(8)]
        for request in requests:
            await harness.requests.send(request)
        await anyio.sleep(0.05)
        assert not any(request.done.is_set() for request in requests)

        harness.azure_ad.gate.set()
        with anyio.fail_after(5):
            for request in requests:
                await request.done.wait()
        assert harness.azure_ad.calls == calls_before + 1


async def test_request_for_an_unregistered_scope_is_released_without_a_fetch() -> None:
    """A request for a scope the wiring did not register is refused but never left hanging."""
    async with running_refresher([timedelta(hours=1)]) as harness:
        request = RefreshRequest("https://unknown.example/.default", reason="typo in the wiring")
        await harness.requests.send(request)
        with anyio.fail_after(5):
            await request.done.wait()
        assert harness.azure_ad.calls == 1
        assert harness.actor.scopes == [SCOPE]


async def test_transient_failure_with_a_valid_token_is_retried_with_backoff() -> None:
    """While the cached token is valid, an outage is retried with growing waits, never raised."""
    lifetime = timedelta(hours=1)
    async with running_refresher([lifetime]) as harness:
        token = harness.cache.get(SCOPE)
        harness.azure_ad.outage = network_outage()
        await harness.advance(lifetime - LEAD)
        failed_attempts = []
        for _ in range(RETRY.max_attempts + 2):
            failed_attempts.append(harness.time.now())
            due = harness.actor.stats()[SCOPE].next_refresh_at
            assert due is not None
            await harness.advance(due - harness.time.now())

        waits = [later - earlier for earlier, later in itertools.pairwise(failed_attempts)]
        assert not harness.finished
        assert harness.cache.get(SCOPE) == token
        ceilings = [
            timedelta(
                seconds=min(RETRY.max_delay_s, RETRY.base_delay_s * RETRY.exponential_base**n)
            )
            for n in range(len(waits))
        ]
        for wait, ceiling in zip(waits, ceilings, strict=True):
            assert timedelta(0) < wait <= ceiling
        stats = harness.actor.stats()[SCOPE]
        assert stats.consecutive_failures == len(failed_attempts) + 1
        assert stats.last_error_category is ErrorCategory.TRANSIENT


async def test_rejected_credentials_end_the_run_at_once_as_auth() -> None:
    """AUTH is raised on the first rejection: retrying a bad secret cannot help."""
    lifetime = timedelta(hours=1)
    async with running_refresher([lifetime]) as harness:
        harness.azure_ad.outage = rejected_secret()
        await harness.advance(lifetime - LEAD)

        assert isinstance(harness.error, TokenRefreshError)
        assert harness.error.category is ErrorCategory.AUTH
        assert harness.azure_ad.calls == 2


async def test_no_token_and_an_outage_end_the_run_as_transient_after_max_attempts() -> None:
    """Without any valid token, the run ends TRANSIENT after `max_attempts` failures in a row."""
    async with running_refresher([timedelta(hours=1)], outage=network_outage()) as harness:
        await harness.advance(timedelta(seconds=RETRY.max_delay_s * RETRY.max_attempts))

        assert isinstance(harness.error, TokenRefreshError)
        assert harness.error.category is ErrorCategory.TRANSIENT
        assert harness.azure_ad.calls == RETRY.max_attempts


async def test_a_restarted_refresher_starts_at_once_from_a_token_still_in_the_cache() -> None:
    """Run again while its cached token is fresh, the refresher reports started without a fetch."""
    harness = build_harness([timedelta(hours=1)])
    with harness.requests, harness.inbox:
        for _ in range(2):
            async with anyio.create_task_group() as tasks:
                with anyio.fail_after(5):
                    await tasks.start(harness.actor.run)
                tasks.cancel_scope.cancel()
    entry = harness.cache.get_entry(SCOPE)
    stats = harness.actor.stats()[SCOPE]

    assert harness.azure_ad.calls == 1
    assert stats.refresh_count == 1
    assert entry is not None
    assert stats.next_refresh_at == entry.expires_on - LEAD


async def test_a_request_during_backoff_waits_for_the_next_attempt_and_is_released_on_stop() -> (
    None
):
    """Asking harder does not cut a backoff short; a refresher that stops still sets `done`."""
    lifetime = timedelta(hours=1)
    request = RefreshRequest(SCOPE, reason="broker rejected the token")
    async with running_refresher([lifetime]) as harness:
        harness.azure_ad.outage = network_outage()
        await harness.advance(lifetime - LEAD)
        calls = harness.azure_ad.calls
        await harness.requests.send(request)
        await anyio.wait_all_tasks_blocked()

        assert harness.azure_ad.calls == calls
        assert not request.done.is_set()
    assert request.done.is_set()


async def test_a_token_the_cache_would_never_serve_is_logged_and_replaced_soon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token expiring within the cache's margin is reported and refetched after min_interval."""
    caplog.set_level(logging.WARNING, logger="actors.token_refresher")
    async with running_refresher([MARGIN - timedelta(minutes=1)]) as harness:
        fetched_at = harness.time.now()
        assert harness.cache.get(SCOPE) is None
        assert harness.actor.stats()[SCOPE].next_refresh_at == fetched_at + MIN_INTERVAL
        assert [r.__dict__.get("event") for r in caplog.records] == ["token_not_servable"]

        await harness.advance(MIN_INTERVAL)
        assert harness.azure_ad.calls == 2


@pytest.mark.parametrize(
    ("option", "value"),
    [("lead_time", MARGIN / 2), ("attempt_timeout", 0.0), ("min_interval", -MIN_INTERVAL)],
)
def test_impossible_settings_are_rejected(option: str, value: object) -> None:
    """A lead shorter than the cache margin, no time per attempt or a negative interval: refused."""
    cache = TokenCache(refresh_margin=MARGIN)
    provider = AzureCredentialProvider.token_file("/nonexistent", cache=cache)
    _, receive = anyio.create_memory_object_stream[RefreshRequest](1)
    with receive, pytest.raises(ValueError, match=option):
        TokenRefresherActor(provider, cache, [SCOPE], receive, **{option: value})  # type: ignore[arg-type]


# -- the property: generated expiry schedules, outages and time steps --------------------------

SERVABLE_LIFETIMES = st.integers(
    min_value=int((MARGIN + 2 * MIN_INTERVAL).total_seconds()) + 1, max_value=3 * 3600
).map(lambda seconds: timedelta(seconds=seconds))
STEPS = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=25 * 60).map(lambda s: timedelta(seconds=s)),
        st.sampled_from([None, None, None, "network", "rejected"]),
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=25, deadline=None)
@given(
    lifetimes=st.lists(SERVABLE_LIFETIMES, min_size=1, max_size=4),
    steps=STEPS,
    rng=st.integers(0, 2**32).map(random.Random),
)
def test_cache_never_serves_an_expired_token_and_stays_fresh_while_azure_ad_works(
    lifetimes: list[timedelta],
    steps: list[tuple[timedelta, str | None]],
    rng: random.Random,
) -> None:
    """Whatever the lifetimes, outages and time steps: no expired token is ever served; while
    Azure AD works a token is always served; the run ends only as the taxonomy says; and after an
    outage the refresher recovers."""

    async def scenario() -> None:
        outages = {"network": network_outage, "rejected": rejected_secret}
        async with running_refresher(lifetimes, [SCOPE, OTHER_SCOPE], rng=rng) as harness:
            had_outage = False
            for delta, outage in steps:
                harness.azure_ad.outage = outages[outage]() if outage else None
                had_outage = had_outage or outage is not None
                await harness.advance(delta)
                now = harness.time.now()
                for scope in harness.scopes:
                    token = harness.cache.get(scope)
                    entry = harness.cache.get_entry(scope)
                    if token is not None:
                        assert entry is not None
                        assert entry.token == token
                        assert entry.expires_on > now
                    if not had_outage:
                        assert token is not None
                if harness.finished:
                    break
            if harness.error is not None:
                assert_failure_follows_the_taxonomy(harness)
            else:
                harness.azure_ad.outage = None
                await harness.advance(timedelta(seconds=RETRY.max_delay_s) + MIN_INTERVAL)
                assert harness.actor.all_fresh()

    anyio.run(scenario, backend="asyncio")


def assert_failure_follows_the_taxonomy(harness: Harness) -> None:
    """The run may end only with AUTH during a rejection, or TRANSIENT once a token expired."""
    error = harness.error
    assert isinstance(error, TokenRefreshError)
    if error.category is ErrorCategory.AUTH:
        assert isinstance(harness.outage_at_failure, ClientAuthenticationError)
        return
    assert error.category is ErrorCategory.TRANSIENT
    assert isinstance(harness.outage_at_failure, ServiceRequestError)
    entry = harness.cache.get_entry(error.scope)
    assert harness.failed_at is not None
    assert entry is None or entry.expires_on <= harness.failed_at
    assert harness.actor.stats()[error.scope].consecutive_failures >= RETRY.max_attempts
