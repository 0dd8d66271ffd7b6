"""SASL authentication failures named as such, where aiokafka reports a connection failure.

Two gaps in aiokafka (0.12) would turn a refused login into an endless TRANSIENT retry:

- Its bootstrap catches every error of each bootstrap connection, a refused SASL login
  (SaslAuthenticationFailed) included, logs it and raises a bare
  `KafkaConnectionError("Unable to bootstrap from ...")`. A wrong password looks like a
  broker that is down, and the supervisor's AUTH path (refresh the token, restart)
  never runs.
- Its OAUTHBEARER client ignores the broker's error challenge (RFC 7628 3.2.2: a JSON
  `{"status": "invalid_token"}` instead of an empty success) and believes it is
  authenticated; the broker closes the connection at the next request.

So `install_oauth_error_check()` (idempotent; called by `start_consumer`) makes aiokafka's
OAUTHBEARER authenticator raise SaslAuthenticationFailed on an error challenge, the way
PLAIN and SCRAM failures already are. And `start_consumer` starts the consumer; when that
fails with a connection error and SASL is on, it connects once more to a bootstrap
server with the same settings (one connection, only on this failure path) to learn
whether the login was refused, and if so raises `AuthError` naming the mechanism, the
user or token scope, the broker's reason, and what to check. A password or token never
appears in it: only the user name, the scope and what the broker said.
"""

from __future__ import annotations

import json
from typing import Any, Final

import anyio
from aiokafka import conn as aiokafka_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed

from actors.consumer.client_config import consumer_kwargs
from actors.consumer.settings import ConsumerSettings
from core.errors import AuthError, classify_exception
from core.types import ErrorCategory

__all__ = ["install_oauth_error_check", "start_consumer"]

_PROBE_TIMEOUT_S: Final = 30.0


class _OAuthAuthenticatorCheckingErrors(aiokafka_conn.OAuthAuthenticator):  # type: ignore[misc]
    """aiokafka's OAUTHBEARER authenticator, failing on the broker's error challenge."""

    async def step(self, payload: bytes | None) -> Any:
        if self._token_sent and payload:
            raise SaslAuthenticationFailed(
                f"the broker refused the OAUTHBEARER token ({_challenge_status(payload)})"
            )
        return await super().step(payload)


def _challenge_status(payload: bytes) -> str:
    try:
        challenge = json.loads(payload)
    except ValueError:
        return "an unreadable error challenge"
    status = challenge.get("status") if isinstance(challenge, dict) else None
    return f"status {status}" if isinstance(status, str) else "an error challenge"


def _checking_authenticator_oauth(connection: Any) -> Any:
    return _OAuthAuthenticatorCheckingErrors(
        sasl_oauth_token_provider=connection._sasl_oauth_token_provider
    )


def install_oauth_error_check() -> None:
    """Make aiokafka's connections use the checking OAUTHBEARER authenticator (idempotent)."""
    aiokafka_conn.AIOKafkaConnection.authenticator_oauth = _checking_authenticator_oauth


async def start_consumer(consumer: Any, settings: ConsumerSettings) -> None:
    """`consumer.start()`, raising AuthError when the broker refused the SASL login."""
    install_oauth_error_check()
    try:
        await consumer.start()
    except KafkaError as exc:
        if settings.sasl_mechanism is None:
            raise
        refused = await _login_refusal(settings)
        if refused is None:
            raise
        raise AuthError(_explain(settings, refused), context=_context(settings)) from exc


async def _login_refusal(settings: ConsumerSettings) -> BaseException | None:
    """Connect to the first bootstrap server as the consumer would; the login error, if any."""
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    security: dict[str, Any] = {
        "security_protocol": settings.security_protocol,
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_plain_username": settings.sasl_username,
        "sasl_plain_password": settings.sasl_password,
        "sasl_oauth_token_provider": settings.oauth_token_provider,
    }
    if settings.security_protocol == "SASL_SSL":
        security["ssl_context"] = consumer_kwargs(settings)["ssl_context"]
    try:
        with anyio.fail_after(_PROBE_TIMEOUT_S):
            connection = await aiokafka_conn.create_conn(
                host.strip("[]"),
                int(port),
                client_id=f"{settings.client_id}-auth-check",
                request_timeout_ms=settings.request_timeout_ms,
                **security,
            )
    except Exception as exc:
        return exc if classify_exception(exc) is ErrorCategory.AUTH else None
    connection.close()
    return None


def _explain(settings: ConsumerSettings, refused: BaseException) -> str:
    reason = str(refused).strip() or type(refused).__name__
    where = f"{settings.bootstrap_servers} ({settings.security_protocol})"
    if settings.sasl_mechanism == "OAUTHBEARER":
        scope = settings.auth_scope or getattr(settings.oauth_token_provider, "scope", None)
        return (
            f"the broker at {where} refused the OAUTHBEARER token for scope {scope!r}: "
            f"{reason}. Check that the scope names the broker's expected audience (for "
            "Event Hubs, the namespace), that the identity may use it, and that this "
            "machine's clock is right (an expired or not-yet-valid token is refused)"
        )
    return (
        f"the broker at {where} refused SASL {settings.sasl_mechanism} login as user "
        f"{settings.sasl_username!r}: {reason}. Check kafka.sasl_username and the "
        "password (kafka.sasl_password, KAFKA_PIPELINE_KAFKA__SASL_PASSWORD or "
        "kafka.sasl_password_file), and that the broker offers this mechanism"
    )


def _context(settings: ConsumerSettings) -> dict[str, Any]:
    return {"mechanism": settings.sasl_mechanism, "bootstrap_servers": settings.bootstrap_servers}
