"""No secret or token ever shows in core.auth's errors, diagnostics or reprs.

Secrets are the client secret, the certificate password, the managed identity
header and every token. Where Entra itself is needed, the local fake stands in
(Azure AD cannot be reached here); it can even echo a rejected secret back, as
a careless service might, to prove the provider redacts it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from auth_fake_entra import (
    CERTIFICATE_PASSWORD,
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT_ID,
    EntraBehaviour,
    FakeAppServiceIdentity,
    FakeEntra,
)
from auth_fakes import make_jwt
from fake_az import FakeAz

from core.auth.credentials import AzureCredentialProvider
from core.auth.errors import CredentialError, KafkaOAuthError
from core.auth.kafka_oauth import create_kafka_oauth_callback
from core.errors import PipelineError

SCOPE = "https://eventhubs.azure.net/.default"


def everything_said_by(error: PipelineError) -> str:
    """All the text our error exposes: message, repr and structured context."""
    return f"{error}\n{error!r}\n{error.context!r}"


def test_echoed_client_secret_is_redacted(fake_entra: FakeEntra) -> None:
    """Even if the token endpoint echoes the submitted secret, our error does not repeat it."""
    wrong_secret = "wrong-SECRET-value-0123456789"
    fake_entra.behaviour = EntraBehaviour(echo_secret_in_errors=True)
    provider = AzureCredentialProvider.client_secret(
        TENANT_ID, CLIENT_ID, wrong_secret, **fake_entra.credential_options()
    )
    with pytest.raises(CredentialError) as caught:
        provider.get_token(SCOPE)
    assert wrong_secret in str(caught.value.__cause__)
    assert wrong_secret not in everything_said_by(caught.value)
    assert "AADSTS7000215" in str(caught.value)


def test_outage_errors_and_diagnostics_never_show_the_secret(fake_entra: FakeEntra) -> None:
    """After a success and an outage, neither the error nor diagnostics show secret or token."""
    provider = AzureCredentialProvider.client_secret(
        TENANT_ID, CLIENT_ID, CLIENT_SECRET, **fake_entra.credential_options()
    )
    token = provider.get_token(SCOPE)
    fake_entra.behaviour = EntraBehaviour(status=503)
    with pytest.raises(CredentialError) as caught:
        provider.get_token("https://storage.azure.com/.default")
    said = everything_said_by(caught.value) + repr(provider.diagnostics()) + repr(provider)
    assert CLIENT_SECRET not in said
    assert token not in said


def test_wrong_certificate_password_is_never_repeated(fake_entra: FakeEntra) -> None:
    """A rejected certificate password appears nowhere in the error or its causes."""
    wrong_password = "wrong-PASSWORD-value-987654"
    with pytest.raises(CredentialError) as caught:
        AzureCredentialProvider.certificate(
            TENANT_ID,
            CLIENT_ID,
            fake_entra.client_certificate.key_and_certificate_pem,
            password=wrong_password,
            **fake_entra.credential_options(),
        )
    chain: list[BaseException] = []
    link: BaseException | None = caught.value
    while link is not None:
        chain.append(link)
        link = link.__cause__
    assert all(wrong_password not in f"{error}{error!r}" for error in chain)


def test_certificate_diagnostics_hide_the_password(fake_entra: FakeEntra) -> None:
    """The certificate method's diagnostics name the file, never its password or tokens."""
    provider = AzureCredentialProvider.certificate(
        TENANT_ID,
        CLIENT_ID,
        fake_entra.client_certificate.key_and_certificate_pem,
        password=CERTIFICATE_PASSWORD,
        **fake_entra.credential_options(),
    )
    token = provider.get_token(SCOPE)
    said = repr(provider.diagnostics()) + repr(provider)
    assert CERTIFICATE_PASSWORD not in said
    assert token not in said


def test_missing_variable_errors_do_not_quote_the_secret() -> None:
    """from_env naming a missing variable does not echo the secret that is set."""
    environ = {"AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET}
    with pytest.raises(CredentialError, match="AZURE_TENANT_ID is missing") as caught:
        AzureCredentialProvider.from_env(environ)
    assert CLIENT_SECRET not in everything_said_by(caught.value)


def test_managed_identity_header_never_shows(
    app_service_identity: FakeAppServiceIdentity,
) -> None:
    """The identity endpoint's header secret appears in no diagnostic or repr."""
    provider = AzureCredentialProvider.managed_identity()
    token = provider.get_token(SCOPE)
    said = repr(provider.diagnostics()) + repr(provider) + repr(provider.cache)
    assert app_service_identity.header_secret not in said
    assert token not in said


def test_token_file_errors_never_quote_the_file(tmp_path: Path) -> None:
    """A token file that cannot be used is described without repeating its contents."""
    unusable = make_jwt({"sub": "token-without-exp", "pad": "P" * 30})
    (tmp_path / "token").write_text(unusable)
    with pytest.raises(CredentialError) as caught:
        AzureCredentialProvider.token_file(tmp_path / "token").get_token(SCOPE)
    assert unusable not in everything_said_by(caught.value)


def test_expired_token_error_does_not_show_the_token(fake_az: FakeAz) -> None:
    """The expired-token error names the expiry, not the token."""
    fake_az.returns_token("expired-token-value", expires_in=-5)
    with pytest.raises(CredentialError) as caught:
        AzureCredentialProvider.azure_cli().get_token(SCOPE)
    assert "expired-token-value" not in everything_said_by(caught.value)


@pytest.mark.anyio
async def test_kafka_errors_and_reprs_never_show_tokens(tmp_path: Path) -> None:
    """The Kafka callback's repr and its errors carry no token."""
    expires_on = int(datetime.now(UTC).timestamp()) + 3600
    path = tmp_path / "token.json"
    path.write_text(json.dumps({"access_token": "kafka-token-value", "expires_on": expires_on}))
    provider = AzureCredentialProvider.token_file(path)
    callback = create_kafka_oauth_callback(provider, "myns")
    assert await callback.token() == "kafka-token-value"
    path.write_text(json.dumps({"access_token": "kafka-token-value", "expires_on": 1}))
    with pytest.raises(KafkaOAuthError) as caught:
        await callback.token()
    said = everything_said_by(caught.value) + repr(callback) + repr(provider.diagnostics())
    assert "kafka-token-value" not in said
