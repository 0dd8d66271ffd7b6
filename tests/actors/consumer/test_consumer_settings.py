"""Consumer settings: validation with clear errors, the Event Hubs profile, aiokafka kwargs."""

from __future__ import annotations

import inspect
import ssl
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.client_config import (
    DEAD_LETTER_HEADER_ROOM,
    PRODUCER_BATCH_BYTES,
    consumer_kwargs,
    producer_kwargs,
)
from actors.consumer.settings import (
    EVENT_HUBS_MAX_REQUEST_SIZE,
    MAX_BUFFERED,
    ConsumerSettings,
    DedupSettings,
    PoisonGuardSettings,
    RetryBudgetSettings,
    event_hubs_profile,
)
from core.errors import ConfigurationError


class StaticToken(AbstractTokenProvider):  # type: ignore[misc]
    """An OAUTHBEARER provider with a fixed token: Azure AD itself cannot run here."""

    scope = "https://eventhubs.azure.net/.default"

    async def token(self) -> str:
        return "not-a-real-token"


class ScopelessToken(AbstractTokenProvider):  # type: ignore[misc]
    """An OAUTHBEARER provider that does not say which scope it asks for."""

    async def token(self) -> str:
        return "not-a-real-token"


def settings(**overrides: Any) -> ConsumerSettings:
    """Valid plaintext settings with `overrides` applied."""
    return ConsumerSettings(
        **{"bootstrap_servers": "127.0.0.1:9092", "topics": ("orders",), "group_id": "g"}
        | overrides
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"bootstrap_servers": " "}, "bootstrap_servers"),
        ({"topics": ()}, "topics"),
        ({"topics": ("orders", "")}, "topics"),
        ({"group_id": ""}, "group_id"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"sasl_mechanism": "PLAIN"}, "sasl_mechanism"),
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}, "sasl_username"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "u",
            },
            "sasl_password",
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
            "oauth_token_provider",
        ),
        ({"session_timeout_ms": 0}, "session_timeout_ms"),
        ({"heartbeat_interval_ms": 10_000}, "heartbeat_interval_ms"),
        ({"max_poll_records": -1}, "max_poll_records"),
        ({"commit_interval_s": float("inf")}, "commit_interval_s"),
        ({"stall_timeout_s": 0.0}, "stall_timeout_s"),
        ({"auto_offset_reset": "none"}, "auto_offset_reset"),
        ({"dead_letter_topic": "{partition}.dlq"}, "dead_letter_topic"),
        ({"dead_letter_topic": "orders"}, "dead_letter_topic"),
        ({"dead_letter_topic": ""}, "dead_letter_topic"),
        ({"ordering": "offset"}, "ordering"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": 10_001}, "max_in_flight"),
        ({"max_in_flight": 8, "max_buffered": 4}, "max_buffered"),
        ({"batch_max_records": 0}, "batch_max_records"),
        ({"batch_max_wait_ms": -1}, "batch_max_wait_ms"),
    ],
)
def test_invalid_settings_name_the_field(overrides: dict[str, Any], field: str) -> None:
    """Each mistake raises ConfigurationError naming the field at fault."""
    with pytest.raises(ConfigurationError, match=f"consumer setting {field}"):
        settings(**overrides)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: DedupSettings(capacity=0), "capacity"),
        (lambda: DedupSettings(ttl_s=-1.0), "ttl_s"),
        (lambda: DedupSettings(header=None), "dedup.header"),
        (lambda: PoisonGuardSettings(max_share=0.0), "poison.max_share"),
        (lambda: PoisonGuardSettings(window=10, min_sample=11), "poison.min_sample"),
        (lambda: RetryBudgetSettings(ratio=1.5), "retry_budget.ratio"),
        (lambda: RetryBudgetSettings(min_retries_per_window=-1), "min_retries_per_window"),
    ],
)
def test_invalid_nested_settings_name_the_field(build: Any, field: str) -> None:
    """Dedup, poison guard and retry budget settings are validated like the rest."""
    with pytest.raises(ConfigurationError, match=field):
        build()


def test_dead_letter_topic_follows_the_source_topic() -> None:
    """The default dead-letter topic is `<topic>.dlq`; None turns dead-lettering off."""
    assert settings().dead_letter_topic_for("orders") == "orders.dlq"
    assert settings(dead_letter_topic="failed").dead_letter_topic_for("orders") == "failed"
    assert settings(dead_letter_topic=None).dead_letter_topic_for("orders") is None


def test_password_is_masked_in_repr() -> None:
    """The SASL password never appears in the settings' repr; the username does."""
    text = repr(
        settings(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="svc-user",
            sasl_password="hunter2-secret",
        )
    )
    assert "hunter2-secret" not in text
    assert "sasl_password='***'" in text
    assert "svc-user" in text


def test_event_hubs_profile_has_the_documented_values() -> None:
    """The profile uses Event Hubs' documented client values over SASL_SSL + OAUTHBEARER."""
    provider = StaticToken()
    profile = event_hubs_profile("myns", topics=("orders",), group_id="g", token_provider=provider)
    assert profile.bootstrap_servers == "myns.servicebus.windows.net:9093"
    assert (profile.security_protocol, profile.sasl_mechanism) == ("SASL_SSL", "OAUTHBEARER")
    assert profile.oauth_token_provider is provider
    assert isinstance(profile.ssl_context, ssl.SSLContext)
    assert profile.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert profile.connections_max_idle_ms == 180_000
    assert profile.metadata_max_age_ms == 180_000
    assert profile.session_timeout_ms == 30_000
    assert profile.request_timeout_ms == 60_000
    assert profile.max_request_size <= 1_000_000
    assert profile.auth_scope == provider.scope


def test_event_hubs_profile_accepts_overrides_within_its_limits() -> None:
    """Overrides apply, but not a request size Event Hubs would reject; without a scope
    from the provider, AUTH refreshes ask for the namespace's scope."""
    profile = event_hubs_profile(
        "myns.servicebus.windows.net",
        topics=("orders",),
        group_id="g",
        token_provider=ScopelessToken(),
        max_poll_records=50,
    )
    assert profile.max_poll_records == 50
    assert profile.auth_scope == "https://myns.servicebus.windows.net/.default"
    with pytest.raises(ConfigurationError, match="max_request_size"):
        event_hubs_profile(
            "myns",
            topics=("orders",),
            group_id="g",
            token_provider=StaticToken(),
            max_request_size=EVENT_HUBS_MAX_REQUEST_SIZE + 1,
        )


def test_event_hubs_profile_rejects_a_bad_namespace() -> None:
    """A namespace that is no host name is a configuration error."""
    with pytest.raises(ConfigurationError, match="namespace"):
        event_hubs_profile("my ns!", topics=("orders",), group_id="g", token_provider=StaticToken())


def test_consumer_kwargs_never_auto_commit_and_carry_oauth() -> None:
    """The consumer commits by hand and authenticates with the profile's token provider."""
    provider = StaticToken()
    kwargs = consumer_kwargs(
        event_hubs_profile("myns", topics=("orders",), group_id="g", token_provider=provider)
    )
    assert kwargs["enable_auto_commit"] is False
    assert kwargs["sasl_oauth_token_provider"] is provider
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    assert kwargs["group_id"] == "g"
    assert "sasl_plain_password" not in kwargs


def test_producer_kwargs_wait_for_all_replicas_within_the_size_limit() -> None:
    """The dead-letter producer uses acks=all, idempotence, and the request size limit."""
    kwargs = producer_kwargs(
        settings(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username="u",
            sasl_password="p",
            max_request_size=9_000_000,
        )
    )
    assert kwargs["acks"] == "all"
    assert kwargs["enable_idempotence"] is True
    assert kwargs["max_request_size"] == 9_000_000
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("u", "p")
    assert "ssl_context" not in kwargs


@given(
    max_request_size=st.integers(min_value=1, max_value=10**8),
    fetch=st.integers(min_value=1, max_value=10**8),
)
def test_producer_request_limit_covers_a_fetched_record_plus_the_dead_letter_headers(
    max_request_size: int, fetch: int
) -> None:
    """Never below the configured limit, never below the fetch limit plus the header room."""
    kwargs = producer_kwargs(
        settings(max_request_size=max_request_size, max_partition_fetch_bytes=fetch)
    )
    assert kwargs["max_request_size"] == max(max_request_size, fetch + DEAD_LETTER_HEADER_ROOM)


@given(
    max_request_size=st.integers(min_value=1, max_value=10**8),
    fetch=st.integers(min_value=1, max_value=10**8),
)
def test_producer_batches_are_large_but_never_above_the_request_limit(
    max_request_size: int, fetch: int
) -> None:
    """A partition's batch is PRODUCER_BATCH_BYTES, or the request limit when that is smaller."""
    kwargs = producer_kwargs(
        settings(max_request_size=max_request_size, max_partition_fetch_bytes=fetch)
    )
    assert kwargs["max_batch_size"] == min(PRODUCER_BATCH_BYTES, kwargs["max_request_size"])


def test_ssl_without_a_context_gets_the_default_one() -> None:
    """SSL without an explicit context verifies certificates with the system's defaults."""
    kwargs = consumer_kwargs(settings(security_protocol="SSL"))
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"security_protocol": "SSL"},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}
        | {"sasl_username": "u", "sasl_password": "p"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}
        | {"oauth_token_provider": StaticToken()},
    ],
)
def test_every_generated_kwarg_is_an_aiokafka_parameter(overrides: dict[str, Any]) -> None:
    """Each key of the consumer and producer kwargs names a parameter of aiokafka's
    constructors, for every security setup (a typo would only show when connecting)."""
    configured = settings(**overrides)
    consumer_parameters = set(inspect.signature(AIOKafkaConsumer).parameters)
    producer_parameters = set(inspect.signature(AIOKafkaProducer).parameters)
    assert set(consumer_kwargs(configured)) <= consumer_parameters
    assert set(producer_kwargs(configured)) <= producer_parameters


def test_oauthbearer_needs_an_aiokafka_token_provider() -> None:
    """An OAUTHBEARER provider that is not an aiokafka AbstractTokenProvider is refused at
    construction (aiokafka itself would only complain when connecting)."""
    with pytest.raises(ConfigurationError, match="AbstractTokenProvider"):
        settings(
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            oauth_token_provider=object(),
        )


def test_the_buffer_bound_defaults_to_a_batch_or_four_per_record_in_flight() -> None:
    """One record in flight buffers one fetched batch, as a plain loop; more in flight
    buffer four records each (at least a batch); an explicit bound wins."""
    assert settings(max_poll_records=300).buffer_bound() == 300
    assert settings(max_poll_records=300, max_in_flight=256).buffer_bound() == 1024
    assert settings(max_poll_records=300, max_in_flight=16).buffer_bound() == 300
    assert settings(max_in_flight=16, max_buffered=40).buffer_bound() == 40


def test_a_batch_handlers_buffer_bound_holds_a_full_batch_per_call_and_one_more() -> None:
    """For a batch handler the automatic bound is a full batch for every call in flight and
    one filling (at least a fetch, at most the setting's ceiling); an explicit bound wins."""
    assert settings(batch_max_records=200).buffer_bound(batches=True) == 500
    assert settings(max_in_flight=4, batch_max_records=200).buffer_bound(batches=True) == 1000
    assert settings(max_poll_records=900, batch_max_records=10).buffer_bound(batches=True) == 900
    huge = settings(max_in_flight=100, batch_max_records=100_000)
    assert huge.buffer_bound(batches=True) == MAX_BUFFERED
    assert settings(max_buffered=40, batch_max_records=200).buffer_bound(batches=True) == 40
