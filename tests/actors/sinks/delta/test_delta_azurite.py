"""The Delta sink on Azure Blob Storage, against the Azurite emulator (real delta-rs object
store over HTTP). OneLake and Azure AD cannot run here: a bearer token is tested up to the
request, which Azurite refuses over plain HTTP."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from delta_testing import TOPIC, Azurite, make_record, rows_per_coordinate
from deltalake import DeltaTable

from actors.sinks.delta import DeltaSink, DeltaSinkSettings
from core.auth import STORAGE_SCOPE, AzureCredentialProvider
from core.errors import ConfigurationError, DeltaTableError, classify_exception
from core.types import ErrorCategory

pytestmark = pytest.mark.anyio


class StaticStorageToken:
    """Stands in for the credential provider: a fixed token (Azure AD cannot run here)."""

    def get_storage_token(self, *, force_refresh: bool = False) -> str:
        return "static-token"


def table_in_new_container(azurite: Azurite) -> str:
    container = f"c{uuid.uuid4().hex[:12]}"
    azurite.create_container(container)
    return f"az://{container}/events"


async def test_batches_redeliveries_and_conflicts_on_azure_storage(azurite: Azurite) -> None:
    """On az://, a batch commits with its offset; a redelivery adds nothing; conflicts retry."""
    table = table_in_new_container(azurite)
    options = azurite.storage_options()

    def sink() -> DeltaSink:
        settings = DeltaSinkSettings(
            table=table, storage_options=options, use_credential_provider=False
        )
        return DeltaSink(settings, group_id="g1")

    ours, theirs = sink(), sink()
    await ours([make_record(0, offset) for offset in range(4)])
    await theirs([make_record(0, offset) for offset in range(2, 7)])  # a redelivery, overlapping
    outcome = await ours([make_record(0, offset) for offset in range(4, 9)])  # stale snapshot
    assert ours.conflicts_retried == 1
    assert (outcome.written, outcome.already_written) == (2, 3)
    assert DeltaTable(table, storage_options=options).transaction_version(f"g1/{TOPIC}/0") == 8
    counts = rows_per_coordinate(table, options)
    assert sorted(counts) == [(0, offset) for offset in range(9)]
    assert set(counts.values()) == {1}


async def test_a_rejected_account_key_is_permanent(azurite: Azurite) -> None:
    """A wrong account key is refused by the store (403) and is PERMANENT: no refresh can fix it."""
    table = table_in_new_container(azurite)
    wrong = azurite.storage_options(
        account_key="AAAA" + azurite.storage_options()["account_key"][4:]
    )
    sink = DeltaSink(
        DeltaSinkSettings(table=table, storage_options=wrong, use_credential_provider=False),
        group_id="g1",
    )
    with pytest.raises(DeltaTableError) as caught:
        await sink([make_record(0, 0)])
    assert caught.value.status_code == 403
    assert classify_exception(caught.value) is ErrorCategory.PERMANENT


async def test_a_token_from_the_credential_provider_is_sent_and_its_refusal_is_auth(
    azurite: Azurite, tmp_path: Path
) -> None:
    """A remote table sends the credential provider's token; the refused token is AUTH."""
    token_file = tmp_path / "token.json"
    token_file.write_text(
        json.dumps({"access_token": "not-a-real-token", "expires_on": time.time() + 3600})
    )
    provider = AzureCredentialProvider.token_file(token_file)
    table = table_in_new_container(azurite)
    settings = DeltaSinkSettings(
        table=table, storage_options=azurite.storage_options(account_key=None)
    )
    sink = DeltaSink(settings, group_id="g1", credentials=provider)
    with pytest.raises(DeltaTableError) as caught:
        await sink([make_record(0, 0)])
    assert provider.cached_token(STORAGE_SCOPE) == "not-a-real-token"  # asked for storage
    assert caught.value.status_code == 403
    assert classify_exception(caught.value) is ErrorCategory.AUTH


def test_a_remote_table_without_a_credential_is_refused_before_writing() -> None:
    """A remote table meant to use the credential provider, without one, is a config error."""
    with pytest.raises(ConfigurationError, match="no Azure credential"):
        DeltaSink(
            DeltaSinkSettings(table="abfss://ws@onelake.dfs.fabric.microsoft.com/lh/Tables/t"),
            group_id="g",
        )


@pytest.mark.parametrize(
    ("status", "reason", "code", "category"),
    [
        (503, "Service Unavailable", "ServerBusy", ErrorCategory.TRANSIENT),
        (500, "Internal Server Error", "InternalError", ErrorCategory.TRANSIENT),
        (429, "Too Many Requests", "TooManyRequests", ErrorCategory.TRANSIENT),
        (403, "Forbidden", "AuthorizationPermissionMismatch", ErrorCategory.PERMANENT),
        (401, "Unauthorized", "InvalidAuthenticationInfo", ErrorCategory.AUTH),
    ],
)
async def test_storage_failures_get_their_category(
    azurite: Azurite, status: int, reason: str, code: str, category: ErrorCategory
) -> None:
    """Throttling and 5xx from the store are TRANSIENT, a permission refusal PERMANENT, a
    rejected token AUTH (responses injected by the proxy in the service's wording)."""
    table = table_in_new_container(azurite)
    options = azurite.storage_options(account_key=None) | {"max_retries": "0"}
    settings = DeltaSinkSettings(table=table, storage_options=options)
    provider = StaticStorageToken()
    sink = DeltaSink(settings, group_id="g1", credentials=provider)  # type: ignore[arg-type]
    azurite.failure.status, azurite.failure.reason, azurite.failure.code = status, reason, code
    try:
        with pytest.raises(DeltaTableError) as caught:
            await sink([make_record(0, 0)])
    finally:
        azurite.failure.status = None
    assert caught.value.status_code == status
    assert classify_exception(caught.value) is category
