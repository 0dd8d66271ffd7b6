"""Where downloaded attachments are kept: a local directory, or Azure Blob Storage / OneLake.

Both stores take a spooled temporary file and a deterministic name (see `naming`) and
replace whatever was stored under that name, so a redelivered record overwrites instead
of duplicating.

* `LocalDirectoryStore`: `root` must exist (like the `jsonl:` handler's directory, it is
  never created). The spool lives in `<root>/.staging`, on the same file system,
  so storing is fsync + atomic rename: a reader never sees half a file, and a crash
  leaves either the old file or the new one (plus, at worst, a stray `.part` file in
  the staging directory, which the next start removes).
* `BlobStore`: uploads with azure-storage-blob's async client (`overwrite=True`), the
  content type and the SHA-256 as blob metadata. OneLake is reached through its Blob
  endpoint (https://onelake.blob.fabric.microsoft.com, the workspace as container, the
  item path as the name prefix). Every upload runs through one circuit breaker with
  `ONELAKE_CIRCUIT_CONFIG` (storage throttles for tens of seconds; see the preset);
  while it is open the handler raises CircuitOpenError and the consumer pauses.
  Failures become `OneLakeError` with the category of the underlying azure-core error
  (403/401 AUTH, 429/5xx TRANSIENT, other 4xx PERMANENT, network errors TRANSIENT).
  The SDK's own retries are cut to `sdk_retries` (default 2, after 1 s and 3 s) from
  its default of three waits of 15 s and more: the consumer's retry policy and the
  breaker decide what happens next, and a record should not sit a minute in one call.
  The spooled file is read in the upload's own chunks on the event loop: it was just
  written, so it is read from the page cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

from core.errors import ConfigurationError, OneLakeError, classify_exception
from core.resilience import ONELAKE_CIRCUIT_CONFIG, CircuitBreaker

__all__ = ["ONELAKE_BLOB_ENDPOINT", "AttachmentStore", "BlobStore", "LocalDirectoryStore"]

ONELAKE_BLOB_ENDPOINT = "https://onelake.blob.fabric.microsoft.com"


class AttachmentStore(Protocol):
    """Keeps spooled files under names; `breaker` is None when nothing remote is called."""

    breaker: CircuitBreaker | None

    @property
    def staging_directory(self) -> Path:
        """Where downloads spool before they are stored."""
        ...

    async def put(self, spooled: Path, name: str, *, content_type: str | None, sha256: str) -> str:
        """Store `spooled` (consumed) under `name`, replacing it; returns where it is."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class LocalDirectoryStore:
    """Files under `root` (created if missing); storing is fsync + rename."""

    breaker: CircuitBreaker | None = None

    def __init__(self, root: Path) -> None:
        """ConfigurationError unless `root` is an existing, writable directory: it is not
        created, so a typo in the path cannot send the files somewhere nobody looks."""
        if not root.is_dir():
            raise ConfigurationError(
                f"attachment store {str(root)!r} is not an existing directory: create it "
                "or fix the path"
            )
        if not os.access(root, os.W_OK | os.X_OK):
            raise ConfigurationError(f"attachment store {str(root)!r} is not writable")
        self.root = root.resolve()
        self._staging = self.root / ".staging"
        self._staging.mkdir(parents=True, exist_ok=True)
        for leftover in self._staging.glob(".download-*.part"):
            leftover.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"LocalDirectoryStore({str(self.root)!r})"

    @property
    def staging_directory(self) -> Path:
        """`<root>/.staging`."""
        return self._staging

    async def put(self, spooled: Path, name: str, *, content_type: str | None, sha256: str) -> str:
        """Move `spooled` to `<root>/<name>` atomically, durably; returns the path."""
        return await anyio.to_thread.run_sync(self._place, spooled, name)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _place(self, spooled: Path, name: str) -> str:
        target = (self.root / name).resolve()
        if not target.is_relative_to(self.root) or target.parent == self._staging:
            raise ValueError(f"attachment name {name!r} leaves the store's directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        with spooled.open("rb") as file:
            os.fsync(file.fileno())
        os.replace(spooled, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return str(target)


class BlobStore:
    """Blobs in one container of an account (or a OneLake workspace)."""

    def __init__(
        self,
        account_url: str,
        container: str,
        credential: AsyncTokenCredential | AzureNamedKeyCredential,
        *,
        staging_directory: Path,
        breaker: CircuitBreaker | None = None,
        max_concurrency: int = 4,
        sdk_retries: int = 2,
    ) -> None:
        self.account_url = account_url.rstrip("/")
        self.container = container
        self.breaker: CircuitBreaker | None = breaker or CircuitBreaker(
            f"store:{self.account_url}/{container}", ONELAKE_CIRCUIT_CONFIG
        )
        self._staging = staging_directory
        self._staging.mkdir(parents=True, exist_ok=True)
        self._max_concurrency = max_concurrency
        self._client = BlobServiceClient(
            self.account_url,
            credential=credential,
            retry_policy=ExponentialRetry(
                initial_backoff=1, increment_base=2, retry_total=sdk_retries, random_jitter_range=1
            ),
        )
        self._container = self._client.get_container_client(container)

    def __repr__(self) -> str:
        return f"BlobStore({self.account_url!r}, {self.container!r})"

    @property
    def staging_directory(self) -> Path:
        """A local directory for the spool (the blob is uploaded from there)."""
        return self._staging

    async def put(self, spooled: Path, name: str, *, content_type: str | None, sha256: str) -> str:
        """Upload `spooled` as blob `name` (overwriting), then delete the spool; returns its URL."""
        assert self.breaker is not None
        try:
            return await self.breaker.call_async(self._upload, spooled, name, content_type, sha256)
        finally:
            await anyio.Path(spooled).unlink(missing_ok=True)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.close()

    async def _upload(self, spooled: Path, name: str, content_type: str | None, sha256: str) -> str:
        blob = self._container.get_blob_client(name)
        try:
            with spooled.open("rb") as data:
                await blob.upload_blob(
                    data,
                    length=os.fstat(data.fileno()).st_size,
                    overwrite=True,
                    max_concurrency=self._max_concurrency,
                    content_settings=ContentSettings(content_type=content_type),
                    metadata={"sha256": sha256},
                )
        except AzureError as exc:
            status = exc.status_code if isinstance(exc, HttpResponseError) else None
            raise OneLakeError(
                f"storing {name!r} in {self.account_url}/{self.container} failed: "
                f"{type(exc).__name__}: {exc.message}",
                status_code=status,
                category=classify_exception(exc),
                context={"blob": name, "container": self.container},
            ) from exc
        return str(blob.url)
