"""The storage credential hands azure-core the provider's storage token (Azurite accepts
tokens only over its own HTTPS, and Entra cannot run here, so the provider reads a token
file and the client side is exercised directly)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken

from actors.attachments.storage_credential import StorageTokenCredential
from core.auth import STORAGE_SCOPE, AzureCredentialProvider
from core.errors import ConfigurationError

pytestmark = pytest.mark.anyio


def write_token(path: Path, token: str, expires_on: int) -> None:
    """Replace the token file atomically (a new inode, so the provider notices)."""
    staged = path.with_suffix(".new")
    staged.write_text(json.dumps({"access_token": token, "expires_on": expires_on}))
    os.replace(staged, path)


async def test_the_storage_token_and_its_expiry_are_handed_out(tmp_path: Path) -> None:
    """get_token(storage scope) returns the provider's token with its expiry in Unix seconds."""
    expires = int(time.time()) + 3600
    write_token(tmp_path / "token", "storage-token-1", expires)
    async with StorageTokenCredential(
        AzureCredentialProvider.token_file(tmp_path / "token")
    ) as credential:
        token = await credential.get_token(STORAGE_SCOPE)
    assert (token.token, token.expires_on) == ("storage-token-1", expires)


class CountingCredential:
    """An azure-identity stand-in (Entra cannot run here) issuing token-1, token-2, ..."""

    issued = 0

    def get_token(self, *scopes: str, **options: object) -> AccessToken:
        CountingCredential.issued += 1
        return AccessToken(f"token-{CountingCredential.issued}", int(time.time()) + 3600)


async def test_a_claims_challenge_forces_a_refresh() -> None:
    """Without claims the cached token is reused; with claims a new one is fetched."""
    CountingCredential.issued = 0
    provider = AzureCredentialProvider(CountingCredential, method="stand-in")  # type: ignore[arg-type]
    credential = StorageTokenCredential(provider)
    assert (await credential.get_token(STORAGE_SCOPE)).token == "token-1"
    assert (await credential.get_token(STORAGE_SCOPE)).token == "token-1"
    refreshed = await credential.get_token(STORAGE_SCOPE, claims='{"access_token":{}}')
    assert refreshed.token == "token-2"


async def test_other_scopes_are_refused(tmp_path: Path) -> None:
    """The credential is for storage only: another scope is a ConfigurationError."""
    write_token(tmp_path / "token", "t", int(time.time()) + 3600)
    credential = StorageTokenCredential(AzureCredentialProvider.token_file(tmp_path / "token"))
    with pytest.raises(ConfigurationError, match="storage"):
        await credential.get_token("https://management.azure.com/.default")
