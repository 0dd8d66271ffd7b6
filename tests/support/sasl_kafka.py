"""An Apache Kafka broker with SASL listeners, for the tests of authentication end to end.

Two client listeners beside PLAINTEXT (which the tests use to create topics and
produce): SASL_PLAINTEXT and SASL_SSL, each offering PLAIN, SCRAM-SHA-512 and
OAUTHBEARER. SASL_SSL presents a certificate of the session's throwaway CA (throwaway_ca.py);
clients trust that CA alone. SCRAM credentials are written when the
storage is formatted (KRaft keeps them in the metadata log); PLAIN users are in the
listener's JAAS configuration.

OAUTHBEARER tokens are validated by the broker itself, with Kafka's
`OAuthBearerValidatorCallbackHandler`: RS256 signature against a JWKS file holding the
fake Entra endpoint's public key (Kafka 4 reads a JWKS URL only when it is listed in
the JVM property `org.apache.kafka.sasl.oauthbearer.allowed.urls`), the expected
audience (the Event Hubs-style namespace the tests name) and the issuer. The OAUTHBEARER
sessions last `connections.max.reauth.ms` at most, and never past the token's `exp`:
aiokafka cannot re-authenticate in place, so the broker closes its connection when the
token expires and the client connects again with a fresh token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from auth_fake_entra import CLIENT_ID, CLIENT_SECRET, TENANT_ID, FakeEntra
from consumer_testing import consumer_settings
from throwaway_ca import ServerCertificate, ThrowawayCA

from actors.consumer import ConsumerSettings
from core.auth import AzureCredentialProvider, EventHubsTokenProvider, TokenCache
from supervisor.testing.apache_kafka import ApacheKafkaBroker

NAMESPACE = "kafka-pipeline-test.servicebus.windows.net"
AUDIENCE = f"https://{NAMESPACE}"
"""The `aud` the broker expects: what Entra puts in a token for the namespace's scope."""
SCOPE = f"{AUDIENCE}/.default"

PLAIN_USER, PLAIN_PASSWORD = "plain-user", "plain-PASSWORD-that-must-never-leak"
SCRAM_USER, SCRAM_PASSWORD = "scram-user", "scram-PASSWORD-that-must-never-leak"

OAUTH_SESSION_MAX_MS = 3_600_000
"""`connections.max.reauth.ms` of the OAUTHBEARER listeners: a session ends at the token's
expiry (shorter) or after an hour."""

_VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
_BROKER_JWT_VALIDATOR = "org.apache.kafka.common.security.oauthbearer.BrokerJwtValidator"
_LISTENERS = {"SASL_PLAINTEXT": "SASL_PLAINTEXT", "SASL_SSL": "SASL_SSL"}


def _jaas(login_module: str, **users: str) -> str:
    entries = "".join(f' user_{name}="{password}"' for name, password in users.items())
    return f"{login_module} required{entries};"


def sasl_properties(
    broker_certificate: ServerCertificate, jwks_file: Path, issuer: str, oauth_session_max_ms: int
) -> dict[str, str]:
    """Broker settings for the SASL listeners (see the module docstring)."""
    properties: dict[str, str] = {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512,OAUTHBEARER",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(broker_certificate.key_and_chain_pem),
        # named explicitly: in Kafka 4.1 the default (DefaultJwtValidator, built without a
        # key resolver by the validator callback handler) checks no signature or audience
        "sasl.oauthbearer.jwt.validator.class": _BROKER_JWT_VALIDATOR,
        "sasl.oauthbearer.jwks.endpoint.url": jwks_file.as_uri(),
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "sasl.oauthbearer.expected.issuer": issuer,
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        prefix = f"listener.name.{listener}"
        properties |= {
            f"{prefix}.plain.sasl.jaas.config": _jaas(
                "org.apache.kafka.common.security.plain.PlainLoginModule",
                **{PLAIN_USER: PLAIN_PASSWORD},
            ),
            f"{prefix}.scram-sha-512.sasl.jaas.config": _jaas(
                "org.apache.kafka.common.security.scram.ScramLoginModule"
            ),
            f"{prefix}.oauthbearer.sasl.jaas.config": _jaas(
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
            ),
            f"{prefix}.oauthbearer.sasl.server.callback.handler.class": _VALIDATOR,
            f"{prefix}.oauthbearer.connections.max.reauth.ms": str(oauth_session_max_ms),
        }
    return properties


@dataclass
class SaslKafka:
    """The running broker, its CA, and where each listener is."""

    broker: ApacheKafkaBroker
    ca: ThrowawayCA

    @property
    def plaintext(self) -> str:
        """For the tests' own setup (topics, records, committed offsets): no auth."""
        return self.broker.bootstrap_servers

    @property
    def sasl_plaintext(self) -> str:
        return self.broker.bootstrap_of("SASL_PLAINTEXT")

    @property
    def sasl_ssl(self) -> str:
        return self.broker.bootstrap_of("SASL_SSL")


def start_sasl_kafka(
    directory: Path,
    jwks: dict[str, Any],
    issuer: str,
    *,
    oauth_session_max_ms: int = OAUTH_SESSION_MAX_MS,
) -> SaslKafka:
    """Make the CA and the JWKS file under `directory`, then start the broker there."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = ThrowawayCA(directory)
    broker_certificate = ca.issue("localhost", ["localhost"], ["127.0.0.1"])
    jwks_file = directory / "jwks.json"
    jwks_file.write_text(json.dumps(jwks))
    broker = ApacheKafkaBroker(
        directory=directory / "broker",
        listeners=_LISTENERS,
        properties=sasl_properties(broker_certificate, jwks_file, issuer, oauth_session_max_ms),
        scram_users={"SCRAM-SHA-512": {SCRAM_USER: SCRAM_PASSWORD}},
        system_properties={"org.apache.kafka.sasl.oauthbearer.allowed.urls": jwks_file.as_uri()},
    )
    broker.start()
    return SaslKafka(broker, ca)


def entra_credentials(entra: FakeEntra, refresh_margin_s: float = 600.0) -> AzureCredentialProvider:
    """The credential provider the process builds for a service principal with a secret,
    pointed at the Entra-style endpoint."""
    return AzureCredentialProvider.client_secret(
        TENANT_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        cache=TokenCache(refresh_margin=timedelta(seconds=refresh_margin_s)),
        **entra.credential_options(),
    )


def entra_token_provider(
    entra: FakeEntra, scope: str = SCOPE, refresh_margin_s: float = 600.0
) -> EventHubsTokenProvider:
    """The OAUTHBEARER provider over `entra_credentials`."""
    return EventHubsTokenProvider(entra_credentials(entra, refresh_margin_s), scope)


def sasl_settings(
    kafka: SaslKafka, mechanism: str, topic: str, **overrides: Any
) -> ConsumerSettings:
    """Settings for `mechanism`: PLAIN over SASL_PLAINTEXT, the others over SASL_SSL."""
    if mechanism == "PLAIN":
        security: dict[str, Any] = {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_username": PLAIN_USER,
            "sasl_password": PLAIN_PASSWORD,
        }
        bootstrap = kafka.sasl_plaintext
    else:
        security = {"security_protocol": "SASL_SSL", "ssl_context": kafka.ca.client_context()}
        bootstrap = kafka.sasl_ssl
        if mechanism == "SCRAM-SHA-512":
            security |= {"sasl_username": SCRAM_USER, "sasl_password": SCRAM_PASSWORD}
    return consumer_settings(bootstrap, topic, sasl_mechanism=mechanism, **(security | overrides))
