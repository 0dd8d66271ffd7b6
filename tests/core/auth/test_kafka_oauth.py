"""The OAUTHBEARER token provider at aiokafka's interface, and Event Hubs scope parsing.

A real SASL exchange with Event Hubs is impossible here (and the test broker
rejects OAUTHBEARER), so the provider is driven through aiokafka's own
connection check and OAUTHBEARER authenticator, with tokens from a real
AzureCredentialProvider over a scripted `az` or a token file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import AIOKafkaConnection, OAuthAuthenticator
from clocks import ManualUtcClock
from fake_az import FakeAz
from hypothesis import given, settings
from hypothesis import strategies as st

from core.auth import kafka_oauth
from core.auth.credentials import AzureCredentialProvider
from core.auth.errors import CredentialError, KafkaOAuthError
from core.auth.kafka_oauth import (
    EVENTHUBS_RESOURCE,
    EVENTHUBS_SCOPE,
    EventHubsTokenProvider,
    create_kafka_oauth_callback,
    eventhubs_scope_for,
)
from core.auth.token_cache import TokenCache
from core.errors import AuthError, classify_exception
from core.types import ErrorCategory

NAMESPACE_SCOPE = "https://myns.servicebus.windows.net/.default"


def file_provider(tmp_path: Path, token: str = "file-token") -> AzureCredentialProvider:
    expires_on = int(datetime.now(UTC).timestamp()) + 3600
    path = tmp_path / "token.json"
    path.write_text(json.dumps({"access_token": token, "expires_on": expires_on}))
    return AzureCredentialProvider.token_file(path)


def finish_without_suspending(coroutine: object) -> object:
    """Run a coroutine one step; return its result if it completed without awaiting anything."""
    with pytest.raises(StopIteration) as finished:
        coroutine.send(None)  # type: ignore[attr-defined]
    return finished.value.value


# -- the aiokafka interface ------------------------------------------------------------------


def test_callback_is_an_aiokafka_token_provider(tmp_path: Path) -> None:
    """The callback is an aiokafka AbstractTokenProvider for the namespace scope."""
    callback = create_kafka_oauth_callback(file_provider(tmp_path), "myns")
    assert isinstance(callback, AbstractTokenProvider)
    assert isinstance(callback, EventHubsTokenProvider)
    assert callback.scope == NAMESPACE_SCOPE


@pytest.mark.anyio
async def test_aiokafka_connection_accepts_the_callback(tmp_path: Path) -> None:
    """aiokafka's OAUTHBEARER connection set-up accepts the callback (it checks the type)."""
    callback = create_kafka_oauth_callback(file_provider(tmp_path), "myns")
    connection = AIOKafkaConnection(
        "127.0.0.1",
        9093,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=callback,
    )
    assert connection.connected() is False


@pytest.mark.anyio
async def test_aiokafka_authenticator_sends_the_token(tmp_path: Path) -> None:
    """aiokafka's OAUTHBEARER authenticator builds its client message with our token."""
    callback = create_kafka_oauth_callback(file_provider(tmp_path, "tok-123"), "myns")
    message, expects_response = await OAuthAuthenticator(sasl_oauth_token_provider=callback).step(
        None
    )
    assert message == b"n,,\x01auth=Bearer tok-123\x01\x01"
    assert expects_response is True


def test_extensions_are_empty(tmp_path: Path) -> None:
    """Event Hubs needs no SASL extensions, so extensions() is empty."""
    assert create_kafka_oauth_callback(file_provider(tmp_path), "myns").extensions() == {}


@pytest.mark.anyio
async def test_token_asks_az_for_the_namespace_resource(fake_az: FakeAz) -> None:
    """token() gets the token for the namespace's resource from the provider's credential."""
    callback = create_kafka_oauth_callback(
        AzureCredentialProvider.azure_cli(), "myns.servicebus.windows.net:9093"
    )
    assert await callback.token() == "az-token-1"
    assert fake_az.calls()[0].endswith("--resource https://myns.servicebus.windows.net")


@pytest.mark.anyio
async def test_fresh_token_is_returned_without_a_thread_hop(fake_az: FakeAz) -> None:
    """With a fresh cached token, token() completes without suspending and runs no `az`."""
    provider = AzureCredentialProvider.azure_cli()
    provider.get_token(NAMESPACE_SCOPE)
    callback = create_kafka_oauth_callback(provider, "myns")
    assert finish_without_suspending(callback.token()) == "az-token-1"
    assert len(fake_az.calls()) == 1


@pytest.mark.anyio
async def test_token_inside_the_margin_is_fetched_again(fake_az: FakeAz) -> None:
    """Once the cached token is inside the refresh margin, token() fetches a new one."""
    clock = ManualUtcClock(datetime.now(UTC))
    fake_az.returns_token("az-token", expires_in=15 * 60)
    provider = AzureCredentialProvider.azure_cli(cache=TokenCache(clock=clock))
    callback = create_kafka_oauth_callback(provider, "myns")
    assert await callback.token() == "az-token-1"
    clock.advance(5 * 60 + 1)
    assert await callback.token() == "az-token-2"


@pytest.mark.anyio
async def test_namespaces_sharing_a_provider_get_their_own_tokens(fake_az: FakeAz) -> None:
    """Two namespaces on one provider each get a token for their own scope."""
    provider = AzureCredentialProvider.azure_cli()
    first = create_kafka_oauth_callback(provider, "first-ns")
    second = create_kafka_oauth_callback(provider, "second-ns")
    assert (await first.token(), await second.token(), await first.token()) == (
        "az-token-1",
        "az-token-2",
        "az-token-1",
    )
    assert provider.cache.scopes() == [first.scope, second.scope]


def test_generic_eventhubs_scope_can_be_chosen(tmp_path: Path) -> None:
    """Passing EVENTHUBS_SCOPE makes the callback request the generic Event Hubs scope."""
    assert create_kafka_oauth_callback(file_provider(tmp_path), EVENTHUBS_SCOPE).scope == (
        EVENTHUBS_SCOPE
    )


@pytest.mark.anyio
async def test_fetch_runs_off_the_event_loop(fake_az: FakeAz) -> None:
    """While `az` is slow, the event loop keeps running other tasks."""
    fake_az.hangs_for(0.4)
    callback = create_kafka_oauth_callback(AzureCredentialProvider.azure_cli(), "myns")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick)
        token = await callback.token()
        tasks.cancel_scope.cancel()
    assert token == "az-token-1"
    assert ticks >= 5


@pytest.mark.anyio
async def test_concurrent_connections_share_one_fetch(fake_az: FakeAz) -> None:
    """Several connections asking at once cost one `az` call and get the same token."""
    fake_az.hangs_for(0.3)
    callback = create_kafka_oauth_callback(AzureCredentialProvider.azure_cli(), "myns")
    tokens: list[str] = []

    async def connect() -> None:
        tokens.append(await callback.token())

    async with anyio.create_task_group() as tasks:
        for _ in range(4):
            tasks.start_soon(connect)
    assert tokens == ["az-token-1"] * 4
    assert len(fake_az.calls()) == 1


@pytest.mark.anyio
async def test_credential_failure_becomes_kafka_oauth_error(fake_az: FakeAz) -> None:
    """A failed fetch raises KafkaOAuthError keeping the category, message and cause."""
    fake_az.is_not_logged_in()
    callback = create_kafka_oauth_callback(AzureCredentialProvider.azure_cli(), "myns")
    with pytest.raises(KafkaOAuthError, match="run `az login`") as caught:
        await callback.token()
    assert isinstance(caught.value, AuthError)
    assert caught.value.category is ErrorCategory.AUTH
    assert isinstance(caught.value.__cause__, CredentialError)


@pytest.mark.anyio
@pytest.mark.usefixtures("no_az")
async def test_configuration_failure_stays_permanent() -> None:
    """A setup mistake behind the callback keeps its PERMANENT category."""
    callback = create_kafka_oauth_callback(AzureCredentialProvider.azure_cli(), "myns")
    with pytest.raises(KafkaOAuthError) as caught:
        await callback.token()
    assert classify_exception(caught.value) is ErrorCategory.PERMANENT


@pytest.mark.anyio
async def test_hanging_credential_times_out_as_transient(fake_az: FakeAz) -> None:
    """A credential slower than the callback's timeout gives a TRANSIENT KafkaOAuthError."""
    fake_az.hangs_for(1)
    callback = create_kafka_oauth_callback(AzureCredentialProvider.azure_cli(), "myns", timeout=0.2)
    with anyio.fail_after(0.9):
        with pytest.raises(KafkaOAuthError, match=r"within 0\.2s") as caught:
            await callback.token()
    assert caught.value.category is ErrorCategory.TRANSIENT


@pytest.mark.anyio
async def test_fetch_abandoned_by_a_timeout_still_fills_the_cache(fake_az: FakeAz) -> None:
    """A fetch that outlived the timeout finishes in its thread; the next token() uses it."""
    fake_az.hangs_for(0.5)
    provider = AzureCredentialProvider.azure_cli()
    callback = create_kafka_oauth_callback(provider, "myns", timeout=0.1)
    with pytest.raises(KafkaOAuthError):
        await callback.token()
    for _ in range(100):
        if provider.cached_token(callback.scope) is not None:
            break
        await anyio.sleep(0.05)
    assert finish_without_suspending(callback.token()) == "az-token-1"
    assert len(fake_az.calls()) == 1


def test_timeout_must_be_positive(tmp_path: Path) -> None:
    """A zero or negative timeout is refused when the callback is made."""
    with pytest.raises(ValueError, match="timeout must be positive"):
        create_kafka_oauth_callback(file_provider(tmp_path), "myns", timeout=0)


def test_repr_never_shows_the_token(tmp_path: Path) -> None:
    """The callback's repr names scope and method, never the token."""
    provider = file_provider(tmp_path, "very-secret-token")
    provider.get_token(NAMESPACE_SCOPE)
    text = repr(create_kafka_oauth_callback(provider, "myns"))
    assert "very-secret-token" not in text
    assert NAMESPACE_SCOPE in text


@pytest.mark.anyio
async def test_rotated_token_file_is_picked_up(tmp_path: Path) -> None:
    """A rewritten token file is what the next token() returns."""
    provider = file_provider(tmp_path, "first")
    callback = create_kafka_oauth_callback(provider, "myns")
    assert await callback.token() == "first"
    expires_on = int(datetime.now(UTC).timestamp()) + 7200
    (tmp_path / "token.json").write_text(
        json.dumps({"access_token": "second-and-longer", "expires_on": expires_on})
    )
    assert await callback.token() == "second-and-longer"


# -- Event Hubs scopes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "scope"),
    [
        ("myns", NAMESPACE_SCOPE),
        ("MyNs", NAMESPACE_SCOPE),
        ("myns.servicebus.windows.net", NAMESPACE_SCOPE),
        ("myns.servicebus.windows.net:9093", NAMESPACE_SCOPE),
        ("  myns:9093 ", NAMESPACE_SCOPE),
        (NAMESPACE_SCOPE, NAMESPACE_SCOPE),
        ("https://myns.servicebus.windows.net", NAMESPACE_SCOPE),
        ("https://myns.servicebus.windows.net/", NAMESPACE_SCOPE),
        ("sb://myns.servicebus.windows.net/", NAMESPACE_SCOPE),
        (EVENTHUBS_SCOPE, EVENTHUBS_SCOPE),
        (EVENTHUBS_RESOURCE, EVENTHUBS_SCOPE),
        ("ns.servicebus.chinacloudapi.cn", "https://ns.servicebus.chinacloudapi.cn/.default"),
    ],
)
def test_every_usual_form_gives_the_scope(given_value: str, scope: str) -> None:
    """Names, FQDNs (with port), endpoints and scope URLs all give https://<host>/.default."""
    assert eventhubs_scope_for(given_value) == scope


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "empty"),
        (":9093", "empty"),
        ("myns:kafka", "not a port number"),
        ("myns:70000", "not a port number"),
        ("ftp://myns.servicebus.windows.net", "only https and sb URLs"),
        ("https://myns.servicebus.windows.net/hub", "ends in /.default"),
        ("https://myns.servicebus.windows.net/.default?x=1", "ends in /.default"),
        ("my ns", "not a valid host name"),
        ("-myns", "not a valid host name"),
        ("myns-", "not a valid host name"),
        ("a..servicebus.windows.net", "not a valid host name"),
        ("x" * 64, "not a valid host name"),
    ],
)
def test_unusable_values_are_permanent_errors_saying_why(bad: str, reason: str) -> None:
    """Values that name no namespace raise a PERMANENT KafkaOAuthError with the reason."""
    with pytest.raises(KafkaOAuthError, match="cannot derive an Event Hubs scope") as caught:
        eventhubs_scope_for(bad)
    assert reason in str(caught.value)
    assert caught.value.category is ErrorCategory.PERMANENT


def test_credentials_in_a_url_are_refused_without_echoing_them() -> None:
    """A URL with user info is refused, and the message does not repeat the credentials."""
    with pytest.raises(KafkaOAuthError, match="user info") as caught:
        eventhubs_scope_for("https://user:hunter2-password@myns.servicebus.windows.net/")
    assert "hunter2-password" not in str(caught.value)


def test_bad_namespace_fails_when_the_callback_is_made(tmp_path: Path) -> None:
    """A namespace that gives no scope fails at creation, not at the first connection."""
    with pytest.raises(KafkaOAuthError):
        create_kafka_oauth_callback(file_provider(tmp_path), "not a namespace")


def test_generic_scope_constants_agree() -> None:
    """EVENTHUBS_SCOPE is EVENTHUBS_RESOURCE's .default scope."""
    assert f"{EVENTHUBS_RESOURCE}/.default" == EVENTHUBS_SCOPE
    assert kafka_oauth.EVENTHUBS_DOMAIN == "servicebus.windows.net"


namespaces = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{4,48}[a-zA-Z0-9]", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(name=namespaces, port=st.integers(min_value=1, max_value=65535), form=st.integers(0, 5))
def test_all_forms_of_a_generated_namespace_agree(name: str, port: int, form: int) -> None:
    """Every written form of any valid namespace name gives the same namespace scope."""
    fqdn = f"{name}.servicebus.windows.net"
    written = [
        name,
        fqdn,
        f"{fqdn}:{port}",
        f"https://{fqdn}/.default",
        f"sb://{fqdn}/",
        f"{name.upper()}:{port}",
    ][form]
    assert eventhubs_scope_for(written) == f"https://{name.lower()}.servicebus.windows.net/.default"


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80))
def test_scope_parsing_is_total_and_idempotent(text: str) -> None:
    """For any text: a well-formed scope that maps to itself, or a KafkaOAuthError; nothing else."""
    outcome: str | KafkaOAuthError
    try:
        outcome = eventhubs_scope_for(text)
    except KafkaOAuthError as error:
        outcome = error
    if isinstance(outcome, KafkaOAuthError):
        assert outcome.category is ErrorCategory.PERMANENT
    else:
        assert outcome.startswith("https://")
        assert outcome.endswith("/.default")
        assert eventhubs_scope_for(outcome) == outcome


class StaticTokenProvider:
    """The smallest TokenProvider: get_token only, no cache; counts the scopes asked for."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.asked: list[str] = []

    def get_token(self, scope: str) -> str:
        self.asked.append(scope)
        return self.token


@pytest.mark.anyio
async def test_any_token_provider_without_a_cache_is_asked_in_a_worker_thread() -> None:
    """A plain TokenProvider (no cached_token) works: each token() asks get_token for the scope."""
    provider = StaticTokenProvider("plain-token")
    callback = create_kafka_oauth_callback(provider, "myns")
    assert await callback.token() == "plain-token"
    assert await callback.token() == "plain-token"
    assert provider.asked == [NAMESPACE_SCOPE, NAMESPACE_SCOPE]
    assert "StaticTokenProvider" in repr(callback)


@pytest.mark.anyio
async def test_a_token_provider_with_a_cache_is_answered_without_get_token() -> None:
    """A provider's cached_token(scope), when it returns a token, is the whole answer."""

    class CachingProvider(StaticTokenProvider):
        def cached_token(self, scope: str) -> str | None:
            return "from-cache"

    provider = CachingProvider("fetched")
    callback = create_kafka_oauth_callback(provider, "myns")
    assert finish_without_suspending(callback.token()) == "from-cache"
    assert provider.asked == []
