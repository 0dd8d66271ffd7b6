"""Fixtures for the attachment tests: the local HTTPS file server and policies that reach it.

The server listens on ::1; the policies trust ::1 only (a stand-in for a public file
server: production policies trust nothing) and resolve test host names through an
injected resolver, so 127.0.0.1, metadata and WireServer stay forbidden as in production.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from attachment_server import AttachmentServer, running_attachment_server
from attachment_testing import TEST_LIMITS, ScriptedResolver, make_policy
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from azurite_emulator import ACCOUNT_KEY, ACCOUNT_NAME, Azurite, running_azurite
from throwaway_ca import ThrowawayCA

from actors.attachments.downloader import Downloader
from core.urls import UrlPolicy


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AttachmentServer, ThrowawayCA]]:
    """The running file server and the CA its certificate comes from."""
    with running_attachment_server(tmp_path_factory.mktemp("attachment-server")) as pair:
        yield pair


@pytest.fixture
def server(served: tuple[AttachmentServer, ThrowawayCA]) -> AttachmentServer:
    """The running file server, its request log cleared."""
    served[0].requests.clear()
    return served[0]


@pytest.fixture
def resolver() -> ScriptedResolver:
    """files.test and other.files.test resolve to ::1; rebind.test is for the test to script."""
    return ScriptedResolver({"files.test": [["::1"]], "other.files.test": [["::1"]]})


@pytest.fixture
def policy(server: AttachmentServer, resolver: ScriptedResolver) -> UrlPolicy:
    """The test policy (see `make_policy`)."""
    return make_policy(server, resolver)


@pytest.fixture
def client_tls(served: tuple[AttachmentServer, ThrowawayCA]) -> ssl.SSLContext:
    """A client TLS context that trusts the test CA only."""
    return served[1].client_context()


@pytest.fixture
async def downloader(policy: UrlPolicy, client_tls: ssl.SSLContext) -> AsyncIterator[Downloader]:
    """A downloader with `TEST_LIMITS`, trusting the test CA."""
    downloader = Downloader(policy, TEST_LIMITS, verify=client_tls)
    try:
        yield downloader
    finally:
        await downloader.aclose()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """Where downloads spool."""
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite's blob service for the session; a failure to start fails the tests using it."""
    directory = tmp_path_factory.mktemp("azurite")
    try:
        emulator = running_azurite(directory / "data", directory / "azurite.log")
        started = emulator.__enter__()
    except Exception as exc:  # the emulator is required: fail loudly, naming the cause
        pytest.fail(f"could not start Azurite: {exc}", pytrace=False)
    try:
        yield started
    finally:
        emulator.__exit__(None, None, None)


@pytest.fixture
async def blob_container(azurite: Azurite) -> AsyncIterator[ContainerClient]:
    """A fresh container on Azurite (the real azure-storage-blob client, shared key)."""
    credential = AzureNamedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY)
    async with BlobServiceClient(azurite.account_url, credential=credential) as service:
        container = service.get_container_client(f"c{uuid.uuid4().hex[:20]}")
        await container.create_container()
        yield container
