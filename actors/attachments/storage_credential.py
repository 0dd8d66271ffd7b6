"""An azure-core async token credential over the pipeline's credential provider.

azure-storage-blob asks its credential for tokens; this one hands out the storage token
of `AzureCredentialProvider` (scope https://storage.azure.com/.default), the same cache
the token refresher keeps fresh, so the store never runs its own token flow. The
provider is synchronous (it may call Entra), so it runs in a worker thread. A claims
challenge (the service rejected the token) forces a refresh. Other scopes are refused:
this credential exists for the store only.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import anyio.to_thread
from azure.core.credentials import AccessToken

from core.auth import STORAGE_SCOPE, AzureCredentialProvider
from core.errors import ConfigurationError

__all__ = ["StorageTokenCredential"]


class StorageTokenCredential:
    """`AsyncTokenCredential` giving the provider's storage token."""

    def __init__(self, provider: AzureCredentialProvider) -> None:
        self._provider = provider

    def __repr__(self) -> str:
        return f"StorageTokenCredential({self._provider!r})"

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """The storage token and its expiry (Unix seconds); refreshed when `claims` is given."""
        if scopes != (STORAGE_SCOPE,):
            raise ConfigurationError(
                f"the storage credential gives tokens for {STORAGE_SCOPE!r} only, "
                f"not for {list(scopes)!r}"
            )
        entry = await anyio.to_thread.run_sync(
            lambda: self._provider.get_token_with_expiry(
                STORAGE_SCOPE, force_refresh=claims is not None
            )
        )
        return AccessToken(entry.token, int(entry.expires_on.timestamp()))

    async def close(self) -> None:
        """Nothing to release: the provider belongs to the process."""

    async def __aenter__(self) -> StorageTokenCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.close()
