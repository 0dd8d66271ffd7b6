"""Fixtures for core.auth tests: no `az` on PATH, a local Entra endpoint, a clean env."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_fake_entra import FakeAppServiceIdentity, FakeEntra, running_fake_entra
from clocks import ManualUtcClock

_AZURE_VARIABLES = (
    "AZURE_AUTH_METHOD",
    "AZURE_TOKEN_FILE",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_AUTHORITY_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_USERNAME",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)


@pytest.fixture
def anyio_backend() -> str:
    """aiokafka runs on asyncio, so these tests do too."""
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_azure_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees this machine's Azure settings or ~/.azure (HOME is a fresh directory)."""
    for name in _AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


@pytest.fixture
def no_az(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH holds no `az` at all."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture(scope="session")
def _entra_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeEntra]:
    with running_fake_entra(tmp_path_factory.mktemp("entra")) as entra:
        yield entra


@pytest.fixture
def fake_entra(_entra_server: FakeEntra) -> FakeEntra:
    """The local Entra token endpoint, reset to issuing tokens."""
    _entra_server.reset()
    return _entra_server


@pytest.fixture
def clock() -> ManualUtcClock:
    """A clock the test moves by hand."""
    return ManualUtcClock()


@pytest.fixture
def app_service_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAppServiceIdentity]:
    """A running App Service identity endpoint, announced through IDENTITY_ENDPOINT/HEADER."""
    identity = FakeAppServiceIdentity()
    identity.start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity.endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", identity.header_secret)
    try:
        yield identity
    finally:
        identity.stop()
