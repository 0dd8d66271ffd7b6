"""The [attachments] table: the example file builds a handler; every bad key is named."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from actors.attachments import (
    AttachmentSettings,
    BlobStore,
    LocalDirectoryStore,
    build_attachment_handler,
)
from actors.attachments.stores import ONELAKE_BLOB_ENDPOINT
from core.auth import AzureCredentialProvider
from core.errors import ConfigurationError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "attachments.toml"
MINIMAL: dict[str, Any] = {
    "url_fields": ["url"],
    "store": "local:stored",
    "allowed_domain_suffixes": ["example.com"],
}


def example_table() -> dict[str, Any]:
    """The [attachments] table of examples/attachments.toml."""
    table: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())["attachments"]
    return table


def test_the_example_table_parses_with_its_values() -> None:
    """Every key of the example is known and keeps its value."""
    table = example_table()
    settings = AttachmentSettings.from_mapping(table)
    assert settings.url_fields == tuple(table["url_fields"])
    assert settings.max_bytes == table["max_bytes"]
    assert settings.content_types == tuple(table["content_types"])
    assert settings.limits().max_connections == table["max_parallel_downloads"]


@pytest.mark.anyio
async def test_the_example_builds_a_onelake_handler(tmp_path: Path) -> None:
    """The example's OneLake store is a blob store on OneLake's endpoint, workspace as container,
    item path before the prefix."""
    token_file = tmp_path / "token"
    token_file.write_text('{"access_token": "t", "expires_on": 4102444800}')
    handler = build_attachment_handler(
        example_table(),
        base_dir=tmp_path,
        credential_provider=AzureCredentialProvider.token_file(token_file),
        result_sink=lambda record: None,
    )
    try:
        assert isinstance(handler.store, BlobStore)
        assert handler.store.account_url == ONELAKE_BLOB_ENDPOINT
        assert handler.store.container == "Contoso"
        assert handler.name_prefix == "Documents.Lakehouse/Files/inbox/attachments"
        assert [b.name for b in handler.breakers()] == [f"store:{ONELAKE_BLOB_ENDPOINT}/Contoso"]
    finally:
        await handler.aclose()


@pytest.mark.anyio
async def test_a_local_store_is_relative_to_the_config_directory(tmp_path: Path) -> None:
    """`local:stored` lands in <base_dir>/stored; the default policy is strict."""
    (tmp_path / "stored").mkdir()
    handler = build_attachment_handler(MINIMAL, base_dir=tmp_path)
    try:
        assert isinstance(handler.store, LocalDirectoryStore)
        assert handler.store.root == tmp_path / "stored"
        assert handler.downloader.policy.trusted_networks == ()
        assert handler.downloader.policy.allowed_ports == frozenset({443})
    finally:
        await handler.aclose()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"colour": "red"}, "attachments.colour"),
        ({"url_fields": []}, "attachments.url_fields"),
        ({"url_fields": "url"}, "attachments.url_fields"),
        ({"allowed_domain_suffixes": []}, "attachments.allowed_hosts"),
        ({"allowed_ports": ["443"]}, "attachments.allowed_ports"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": "big"}, "attachments.max_bytes"),
        ({"connect_timeout_s": 0}, "connect_timeout_s"),
        ({"read_timeout_s": float("nan")}, "attachments.read_timeout_s"),
        ({"max_redirects": 50}, "max_redirects"),
        ({"content_types": ["PDF"]}, "content_types"),
        ({"max_parallel_per_event": 0}, "attachments.max_parallel_per_event"),
        ({"host_recovery_timeout_s": -1}, "attachments.host_recovery_timeout_s"),
        ({"skip_events_without_urls": "yes"}, "attachments.skip_events_without_urls"),
        ({"store": "s3://bucket"}, "attachments.store"),
        ({"store": "local:missing"}, "attachments.store"),
        ({"store": "blob:http://acct.blob.core.windows.net/c"}, "attachments.store"),
        ({"store": "onelake:WorkspaceOnly"}, "attachments.store"),
        ({"store": "blob:https://acct.blob.core.windows.net/c"}, "needs Azure credentials"),
        ({"result_topic": "results"}, "attachments.result_topic"),
        ({"allowed_hosts": ["0x7f.1"]}, "allowed_hosts"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, change: dict[str, Any], key: str) -> None:
    """An unknown key, a wrong type, a value out of range or an unusable store is a
    ConfigurationError naming the key."""
    (tmp_path / "stored").mkdir()
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        build_attachment_handler(MINIMAL | change, base_dir=tmp_path)
