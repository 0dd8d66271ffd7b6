"""The stores: a local directory (atomic, overwriting) and Azure Blob Storage on Azurite
through the real azure-storage-blob client; failures become OneLakeError by category."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from attachment_testing import new_directory
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob.aio import ContainerClient
from azurite_emulator import ACCOUNT_KEY, ACCOUNT_NAME, Azurite

from actors.attachments.stores import BlobStore, LocalDirectoryStore
from core.errors import ConfigurationError, OneLakeError
from core.resilience import ONELAKE_CIRCUIT_CONFIG
from core.types import ErrorCategory

pytestmark = pytest.mark.anyio


def spooled(directory: Path, content: bytes) -> Path:
    """A spool file holding `content` in `directory`."""
    path = directory / f".download-{hashlib.sha256(content).hexdigest()[:12]}.part"
    path.write_bytes(content)
    return path


def read(path: Path) -> bytes:
    """The bytes of `path`."""
    return path.read_bytes()


async def test_local_store_places_and_overwrites(tmp_path: Path) -> None:
    """Storing twice under one name leaves one file with the second content, no spool left."""
    store = LocalDirectoryStore(new_directory(tmp_path / "store"))
    first = await store.put(
        spooled(store.staging_directory, b"one"), "p/e/0-a.pdf", content_type=None, sha256="x"
    )
    second = await store.put(
        spooled(store.staging_directory, b"two"), "p/e/0-a.pdf", content_type=None, sha256="y"
    )
    assert first == second == str(tmp_path / "store/p/e/0-a.pdf")
    assert read(Path(second)) == b"two"
    assert os.listdir(store.staging_directory) == []


async def test_local_store_refuses_names_leaving_its_directory(tmp_path: Path) -> None:
    """A name that climbs out of the root is refused (naming never makes one; this is a guard)."""
    store = LocalDirectoryStore(new_directory(tmp_path / "store"))
    with pytest.raises(ValueError, match="leaves"):
        await store.put(
            spooled(store.staging_directory, b"x"), "../escape", content_type=None, sha256="x"
        )


async def test_local_store_removes_stray_spools_on_start(tmp_path: Path) -> None:
    """A spool left by a crash is removed when the store starts again."""
    LocalDirectoryStore(new_directory(tmp_path / "store"))
    stray = spooled(tmp_path / "store/.staging", b"half")
    LocalDirectoryStore(new_directory(tmp_path / "store"))
    assert not stray.exists()


async def test_blob_store_uploads_and_overwrites_on_azurite(
    azurite: Azurite, blob_container: ContainerClient, tmp_path: Path
) -> None:
    """Uploading twice under one name leaves one blob with the second body, type and hash."""
    store = BlobStore(
        azurite.account_url,
        blob_container.container_name,
        AzureNamedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY),
        staging_directory=tmp_path / "staging",
    )
    try:
        body = os.urandom(200_000)
        digest = hashlib.sha256(body).hexdigest()
        await store.put(spooled(tmp_path, b"old"), "a/e1/0-f.bin", content_type=None, sha256="0")
        url = await store.put(
            spooled(tmp_path, body), "a/e1/0-f.bin", content_type="application/pdf", sha256=digest
        )
    finally:
        await store.aclose()
    assert url.endswith("/a/e1/0-f.bin")
    names = [blob.name async for blob in blob_container.list_blobs()]
    assert names == ["a/e1/0-f.bin"]
    blob = blob_container.get_blob_client("a/e1/0-f.bin")
    assert await (await blob.download_blob()).readall() == body
    properties = await blob.get_blob_properties()
    assert properties.metadata == {"sha256": digest}
    assert properties.content_settings.content_type == "application/pdf"
    assert store.breaker is not None
    assert store.breaker.config == ONELAKE_CIRCUIT_CONFIG
    assert os.listdir(tmp_path) == ["staging"]


async def test_blob_store_failures_are_onelake_errors_by_category(
    azurite: Azurite, tmp_path: Path
) -> None:
    """A missing container is PERMANENT (404), a wrong key AUTH (403), no server TRANSIENT."""
    cases = [
        (azurite.account_url, "no-such-container", ACCOUNT_KEY, ErrorCategory.PERMANENT, 404),
        (azurite.account_url, "no-such-container", "d3Jvbmc=", ErrorCategory.AUTH, 403),
        (f"http://127.0.0.1:9/{ACCOUNT_NAME}", "c", ACCOUNT_KEY, ErrorCategory.TRANSIENT, None),
    ]
    for account_url, container, key, category, status in cases:
        store = BlobStore(
            account_url,
            container,
            AzureNamedKeyCredential(ACCOUNT_NAME, key),
            staging_directory=tmp_path / "staging",
            sdk_retries=0,
        )
        try:
            with pytest.raises(OneLakeError) as caught:
                await store.put(spooled(tmp_path, b"x"), "n", content_type=None, sha256="x")
        finally:
            await store.aclose()
        assert caught.value.category is category, caught.value
        assert caught.value.status_code == status


def test_local_store_needs_an_existing_directory(tmp_path: Path) -> None:
    """A missing root is a ConfigurationError, not created: a typo must not hide the files."""
    with pytest.raises(ConfigurationError, match="not an existing directory"):
        LocalDirectoryStore(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()
