"""A login the broker refuses ends the consumer with AUTH (the supervisor's refresh-then-
restart path), naming what to check, never a password, secret or token.

The refusals are the broker's own: a wrong password (PLAIN, SCRAM-SHA-512), a token for
another audience, and a token that expired (the endpoint says it lives an hour, its own
`exp` is ten minutes gone, as with a skewed clock).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from auth_fake_entra import CLIENT_SECRET, FakeEntra
from sasl_kafka import (
    PLAIN_PASSWORD,
    SCOPE,
    SCRAM_PASSWORD,
    SaslKafka,
    entra_token_provider,
    sasl_settings,
)

from actors.consumer import KafkaConsumerActor
from core.errors import AuthError, classify_exception
from core.types import ErrorCategory
from supervisor.testing import create_topics, unique_name

pytestmark = pytest.mark.anyio

WRONG_PASSWORD = "wrong-PASSWORD-that-must-never-leak"
OTHER_SCOPE = "https://another-namespace.servicebus.windows.net/.default"


async def refused(sasl_kafka: SaslKafka, mechanism: str, **overrides: Any) -> AuthError:
    """Run a consumer with these credentials; the AuthError it ends with."""
    topic = unique_name("refused")
    await create_topics(sasl_kafka.plaintext, [topic])
    config = sasl_settings(sasl_kafka, mechanism, topic, request_timeout_ms=5000, **overrides)
    with anyio.fail_after(60), pytest.raises(AuthError) as raised:
        await KafkaConsumerActor(config, lambda record: None).run()
    assert classify_exception(raised.value) is ErrorCategory.AUTH
    return raised.value


def assert_no_secret(message: str) -> None:
    """No password, client secret or JWT (they all start `eyJ`) in `message`."""
    for secret in (WRONG_PASSWORD, PLAIN_PASSWORD, SCRAM_PASSWORD, CLIENT_SECRET, "eyJ"):
        assert secret not in message


@pytest.mark.parametrize(
    ("mechanism", "user"), [("PLAIN", "plain-user"), ("SCRAM-SHA-512", "scram-user")]
)
async def test_a_wrong_password_is_auth_naming_the_user_and_what_to_check(
    sasl_kafka: SaslKafka, mechanism: str, user: str
) -> None:
    """The broker's refusal of a wrong password is AUTH, naming the mechanism, the user, the
    broker's reason and the settings to check; the password is not in it."""
    error = await refused(sasl_kafka, mechanism, sasl_password=WRONG_PASSWORD)
    message = str(error)
    assert f"refused SASL {mechanism} login as user {user!r}" in message
    assert "SaslAuthenticationFailed: Authentication failed" in message  # the broker's reason
    assert "Check kafka.sasl_username and the password" in message
    assert_no_secret(message)


async def test_a_token_for_another_audience_is_auth_naming_the_scope(
    sasl_kafka: SaslKafka, fake_entra: FakeEntra
) -> None:
    """A valid token for another namespace is refused by the broker's audience check: AUTH,
    naming the scope asked for and the audience to check, without the token."""
    provider = entra_token_provider(fake_entra, scope=OTHER_SCOPE)
    error = await refused(
        sasl_kafka, "OAUTHBEARER", oauth_token_provider=provider, auth_scope=OTHER_SCOPE
    )
    message = str(error)
    assert f"refused the OAUTHBEARER token for scope {OTHER_SCOPE!r}" in message
    assert "invalid_token" in message
    assert "expected audience" in message
    assert_no_secret(message)


async def test_an_expired_token_is_auth_pointing_at_the_clock(
    sasl_kafka: SaslKafka, fake_entra: FakeEntra
) -> None:
    """A token whose own `exp` has passed (the endpoint claims an hour) is refused by the
    broker: AUTH, naming the scope and the clock among what to check, without the token."""
    fake_entra.behaviour.token_lifetime_s = -600
    provider = entra_token_provider(fake_entra)
    error = await refused(
        sasl_kafka, "OAUTHBEARER", oauth_token_provider=provider, auth_scope=SCOPE
    )
    message = str(error)
    assert f"refused the OAUTHBEARER token for scope {SCOPE!r}" in message
    assert "clock" in message
    assert_no_secret(message)
