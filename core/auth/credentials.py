"""One place that turns "some Azure identity" into bearer tokens for a scope.

`AzureCredentialProvider` wraps an azure-identity credential (Azure CLI, service
principal with secret or certificate, DefaultAzureCredential, managed identity)
or a token file, and puts a `TokenCache` in front of it. The cache matters: the
Azure CLI credential starts an `az` process on every call and caches nothing.
Concurrent callers for one scope share a single fetch (a lock per scope), so a
burst of Kafka connections, or of forced refreshes after an AUTH failure, costs
one token request, not one each.

Calls block (subprocess or HTTP): async code runs them in a worker thread. Every
failure is a `CredentialError` (an `AuthError`) whose category says what to do
(see `core.auth.error_mapping`) and whose message says what to fix; no message,
repr or diagnostic ever shows a secret or a token.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.identity import (
    AzureCliCredential,
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)

from core.auth.error_mapping import credential_error_from, redact
from core.auth.errors import CredentialConfigurationError, CredentialError
from core.auth.token_cache import CachedToken, TokenCache, to_utc_datetime
from core.auth.token_file import TokenFileCredential
from core.errors import PipelineError
from core.logging.error_text import error_text

__all__ = [
    "AUTH_METHODS",
    "STORAGE_SCOPE",
    "AzureCredentialProvider",
    "get_default_provider",
    "kusto_scope_for",
    "set_default_provider",
]

STORAGE_SCOPE: Final = "https://storage.azure.com/.default"
"""Scope of Azure Storage and OneLake (its DFS endpoint accepts storage tokens)."""

AUTH_METHODS: Final = (
    "token_file",
    "client_secret",
    "certificate",
    "managed_identity",
    "cli",
    "default",
)
"""The values AZURE_AUTH_METHOD accepts (aliases: spn, service_principal, az, msi, file)."""

_ALIASES: Final = {
    "spn": "client_secret",
    "service_principal": "client_secret",
    "secret": "client_secret",
    "az": "cli",
    "azure_cli": "cli",
    "msi": "managed_identity",
    "file": "token_file",
}

_LABELS: Final = {
    "token_file": "the token file",
    "client_secret": "the service principal (client secret)",
    "certificate": "the service principal (certificate)",
    "managed_identity": "the managed identity",
    "cli": "the Azure CLI",
    "default": "DefaultAzureCredential",
}


def kusto_scope_for(cluster_url: str) -> str:
    """The token scope of a Kusto (Azure Data Explorer) cluster URL."""
    parts = urlsplit(cluster_url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise CredentialConfigurationError(
            f"Kusto cluster URL {cluster_url!r} is not an https URL; "
            "use e.g. https://mycluster.westeurope.kusto.windows.net"
        )
    return f"https://{parts.hostname}/.default"


class AzureCredentialProvider:
    """Bearer tokens by scope from one Azure identity, cached until near expiry.

    Build one with a factory (`azure_cli`, `client_secret`, `certificate`,
    `default`, `managed_identity`, `token_file`) or `from_env`.
    """

    def __init__(
        self,
        credential_factory: Callable[[], TokenCredential],
        *,
        method: str,
        cache: TokenCache | None = None,
        details: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        """Build the credential now, so setup mistakes surface at startup.

        `credential_factory` is called again on a forced refresh: azure-identity's
        MSAL-based credentials keep their own token cache (and throttle after 5xx),
        and a new credential is the only documented way past both. `details` go to
        diagnostics; `secrets` are redacted from every error message.
        """
        self._method = method
        self._label = _LABELS.get(method, method)
        self._factory = credential_factory
        self._cache = cache if cache is not None else TokenCache()
        self._details = dict(details or {})
        self._secrets = tuple(secret for secret in secrets if secret)
        self._locks_guard = threading.Lock()
        self._scope_locks: dict[str, threading.Lock] = {}
        self._credential = self._build_credential()

    # -- factories ---------------------------------------------------------------------------

    @classmethod
    def azure_cli(
        cls,
        *,
        tenant_id: str = "",
        process_timeout: int = 10,
        cache: TokenCache | None = None,
    ) -> AzureCredentialProvider:
        """Tokens from the logged-in Azure CLI (`az login` first)."""
        return cls(
            lambda: AzureCliCredential(tenant_id=tenant_id, process_timeout=process_timeout),
            method="cli",
            cache=cache,
            details={"tenant_id": tenant_id} if tenant_id else {},
        )

    @classmethod
    def client_secret(
        cls,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        *,
        cache: TokenCache | None = None,
        **options: Any,
    ) -> AzureCredentialProvider:
        """Tokens for a service principal with a client secret (`options` go to azure-identity)."""
        _require({"tenant_id": tenant_id, "client_id": client_id, "client_secret": client_secret})
        return cls(
            lambda: ClientSecretCredential(tenant_id, client_id, client_secret, **options),
            method="client_secret",
            cache=cache,
            details=_spn_details(tenant_id, client_id, options),
            secrets=(client_secret,),
        )

    @classmethod
    def certificate(
        cls,
        tenant_id: str,
        client_id: str,
        certificate_path: str | os.PathLike[str],
        *,
        password: str | None = None,
        cache: TokenCache | None = None,
        **options: Any,
    ) -> AzureCredentialProvider:
        """Tokens for a service principal with a PEM/PKCS12 certificate holding its private key."""
        path = os.fspath(certificate_path)
        _require({"tenant_id": tenant_id, "client_id": client_id, "certificate_path": path})
        if not os.path.isfile(path):
            raise CredentialConfigurationError(
                f"certificate file {path} does not exist: check AZURE_CLIENT_CERTIFICATE_PATH"
            )
        return cls(
            lambda: CertificateCredential(
                tenant_id, client_id, certificate_path=path, password=password, **options
            ),
            method="certificate",
            cache=cache,
            details={**_spn_details(tenant_id, client_id, options), "certificate_path": path},
            secrets=(password,) if password else (),
        )

    @classmethod
    def default(cls, *, cache: TokenCache | None = None, **options: Any) -> AzureCredentialProvider:
        """Tokens from azure-identity's DefaultAzureCredential chain (`options` go to it)."""
        return cls(lambda: DefaultAzureCredential(**options), method="default", cache=cache)

    @classmethod
    def managed_identity(
        cls,
        client_id: str | None = None,
        *,
        cache: TokenCache | None = None,
        **options: Any,
    ) -> AzureCredentialProvider:
        """Tokens for the host's managed identity (user-assigned when `client_id` is given)."""
        return cls(
            lambda: ManagedIdentityCredential(client_id=client_id, **options),
            method="managed_identity",
            cache=cache,
            details={"client_id": client_id} if client_id else {},
        )

    @classmethod
    def token_file(
        cls, path: str | os.PathLike[str], *, cache: TokenCache | None = None
    ) -> AzureCredentialProvider:
        """Tokens from a file another process keeps current (see `core.auth.token_file`)."""
        return cls(
            lambda: TokenFileCredential(path),
            method="token_file",
            cache=cache,
            details={"token_file": os.fspath(path)},
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        cache: TokenCache | None = None,
    ) -> AzureCredentialProvider:
        """The provider the environment asks for; empty variables count as unset.

        Precedence, first match wins:

        1. AZURE_AUTH_METHOD, when set, is an explicit choice (one of `AUTH_METHODS`
           or an alias); the variables that method needs must then be set.
        2. AZURE_TOKEN_FILE: the token file.
        3. AZURE_CLIENT_SECRET: service principal with secret (needs AZURE_CLIENT_ID,
           AZURE_TENANT_ID).
        4. AZURE_CLIENT_CERTIFICATE_PATH: service principal with certificate (needs
           AZURE_CLIENT_ID, AZURE_TENANT_ID; AZURE_CLIENT_CERTIFICATE_PASSWORD optional).
        5. Otherwise DefaultAzureCredential, which itself tries environment, workload
           identity, managed identity and the developer tools (Azure CLI among them).

        AZURE_AUTHORITY_HOST (sovereign clouds) goes to the service principal methods;
        AZURE_TENANT_ID narrows the Azure CLI; AZURE_CLIENT_ID picks a user-assigned
        managed identity. DefaultAzureCredential and ManagedIdentityCredential read
        os.environ themselves (azure-identity's behaviour), whatever `environ` says.
        """
        env = {name: value for name, value in environ.items() if value}
        method = _choose_method(env)
        if method == "token_file":
            return cls.token_file(_need(env, "AZURE_TOKEN_FILE", method), cache=cache)
        if method == "client_secret":
            return cls.client_secret(
                _need(env, "AZURE_TENANT_ID", method),
                _need(env, "AZURE_CLIENT_ID", method),
                _need(env, "AZURE_CLIENT_SECRET", method),
                cache=cache,
                **_authority(env),
            )
        if method == "certificate":
            return cls.certificate(
                _need(env, "AZURE_TENANT_ID", method),
                _need(env, "AZURE_CLIENT_ID", method),
                _need(env, "AZURE_CLIENT_CERTIFICATE_PATH", method),
                password=env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
                cache=cache,
                **_authority(env),
            )
        if method == "managed_identity":
            return cls.managed_identity(env.get("AZURE_CLIENT_ID"), cache=cache)
        if method == "cli":
            return cls.azure_cli(tenant_id=env.get("AZURE_TENANT_ID", ""), cache=cache)
        return cls.default(cache=cache)

    # -- tokens ------------------------------------------------------------------------------

    @property
    def method(self) -> str:
        """Which of `AUTH_METHODS` this provider uses."""
        return self._method

    @property
    def cache(self) -> TokenCache:
        """The cache in front of the credential."""
        return self._cache

    def get_token(self, scope: str, *, force_refresh: bool = False) -> str:
        """A token for `scope`: the cached one while fresh, else a new one."""
        return self.get_token_with_expiry(scope, force_refresh=force_refresh).token

    def get_token_with_expiry(self, scope: str, *, force_refresh: bool = False) -> CachedToken:
        """Like `get_token`, with the expiry (for whoever schedules refreshes).

        If refreshing a token inside the margin fails, the old token is returned as
        long as it has not expired: that is what the margin is for, and a connection
        made with it beats one refused. The failure is raised once nothing valid is
        left, and always with `force_refresh=True`, which skips the cache (after the
        token was rejected); if another caller fetched a new token while this one
        waited, that one is used.

        The entry returned may be inside the margin: after such a fallback, or when
        the source had nothing newer (the Azure CLI's own cache, a token file).
        Whoever schedules refreshes tells by `entry.is_fresh(cache.now(), margin)`.
        """
        _check_scope(scope)
        self._forget_if_source_changed()
        seen = self._cache.get_entry(scope)
        if not force_refresh and seen is not None and self._is_fresh(seen):
            return seen
        with self._lock_for(scope):
            current = self._cache.get_entry(scope)
            if (
                current is not None
                and self._is_fresh(current)
                and (current is not seen or not force_refresh)
            ):
                return current
            try:
                return self._fetch(scope, force_refresh=force_refresh)
            except CredentialError:
                if (
                    force_refresh
                    or current is None
                    or current.seconds_to_expiry(self._cache.now()) <= 0
                ):
                    raise
                return current

    def cached_token(self, scope: str) -> str | None:
        """The cached token for `scope` if fresh, without ever blocking on a fetch."""
        self._forget_if_source_changed()
        return self._cache.get(scope)

    def get_storage_token(self, *, force_refresh: bool = False) -> str:
        """A token for Azure Storage / OneLake."""
        return self.get_token(STORAGE_SCOPE, force_refresh=force_refresh)

    def get_kusto_token(self, cluster_url: str, *, force_refresh: bool = False) -> str:
        """A token for the Kusto cluster at `cluster_url` (https://<cluster>.<region>.kusto...)."""
        return self.get_token(kusto_scope_for(cluster_url), force_refresh=force_refresh)

    def clear_cache(self, scope: str | None = None) -> None:
        """Forget the cached token of `scope`, or all of them."""
        self._cache.clear(scope)

    def diagnostics(self) -> dict[str, Any]:
        """What a person debugging auth needs: method, settings, scopes, expiries; no secrets."""
        now = self._cache.now()
        tokens = {
            scope: {
                "expires_on": entry.expires_on.isoformat(),
                "seconds_to_expiry": round(entry.seconds_to_expiry(now), 3),
                "fresh": entry.is_fresh(now, self._cache.refresh_margin),
            }
            for scope, entry in sorted(self._cache.entries().items())
        }
        return {
            "method": self._method,
            **self._details,
            "refresh_margin_seconds": self._cache.refresh_margin.total_seconds(),
            "cached_scopes": sorted(tokens),
            "tokens": tokens,
        }

    def __repr__(self) -> str:
        return f"AzureCredentialProvider(method={self._method!r}, scopes={self._cache.scopes()!r})"

    # -- internals ---------------------------------------------------------------------------

    def _is_fresh(self, entry: CachedToken) -> bool:
        return entry.is_fresh(self._cache.now(), self._cache.refresh_margin)

    def _lock_for(self, scope: str) -> threading.Lock:
        with self._locks_guard:
            return self._scope_locks.setdefault(scope, threading.Lock())

    def _forget_if_source_changed(self) -> None:
        if isinstance(self._credential, TokenFileCredential) and self._credential.has_changed():
            self._cache.clear()

    def _build_credential(self) -> TokenCredential:
        try:
            return self._factory()
        except (ValueError, TypeError, OSError) as exc:
            detail = redact(error_text(exc), self._secrets)
            raise CredentialConfigurationError(f"{self._label} cannot be set up: {detail}") from exc

    def _fetch(self, scope: str, *, force_refresh: bool) -> CachedToken:
        if force_refresh:
            self._credential = self._build_credential()
        entry = self._fetch_from_credential(scope)
        if not force_refresh and self._method in _SELF_CACHING and not self._is_fresh(entry):
            # Its own cache handed back a token inside our margin (MSAL keeps one until
            # 5 minutes before expiry): a new credential gets a fresh one, once.
            self._credential = self._build_credential()
            entry = self._fetch_from_credential(scope)
        return entry

    def _fetch_from_credential(self, scope: str) -> CachedToken:
        try:
            access = self._credential.get_token(scope)
        except PipelineError:
            raise
        except Exception as exc:
            raise credential_error_from(
                exc, method=self._label, scope=scope, secrets=self._known_secrets()
            ) from exc
        try:
            expires_on = to_utc_datetime(access.expires_on)
        except ValueError as exc:
            raise CredentialError(
                f"{self._label} returned a token for {scope} with an unusable expiry: "
                f"{error_text(exc)}"
            ) from exc
        if expires_on <= self._cache.now():
            hint = _EXPIRED_HINTS.get(self._method, "check this machine's clock")
            raise CredentialError(
                f"{self._label} returned a token for {scope} that expired at "
                f"{expires_on.isoformat()}: {hint}"
            )
        return self._cache.set(scope, access.token, expires_on)

    def _known_secrets(self) -> tuple[str, ...]:
        return self._secrets + tuple(entry.token for entry in self._cache.entries().values())


_SELF_CACHING: Final = frozenset({"client_secret", "certificate", "managed_identity", "default"})
"""Methods whose azure-identity credential keeps its own token cache."""

_EXPIRED_HINTS: Final = {
    "token_file": "the process that writes the token file must refresh it",
    "cli": "run `az login` again",
}


def _choose_method(env: Mapping[str, str]) -> str:
    chosen = env.get("AZURE_AUTH_METHOD")
    if chosen is not None:
        method = _ALIASES.get(chosen.strip().lower(), chosen.strip().lower())
        if method not in AUTH_METHODS:
            raise CredentialConfigurationError(
                f"AZURE_AUTH_METHOD={chosen!r} is not known; use one of {', '.join(AUTH_METHODS)}"
            )
        return method
    if "AZURE_TOKEN_FILE" in env:
        return "token_file"
    if "AZURE_CLIENT_SECRET" in env:
        return "client_secret"
    if "AZURE_CLIENT_CERTIFICATE_PATH" in env:
        return "certificate"
    return "default"


def _need(env: Mapping[str, str], name: str, method: str) -> str:
    value = env.get(name)
    if value is None:
        raise CredentialConfigurationError(
            f"{name} is missing: the {method} auth method needs it (set it, or choose another "
            "method with AZURE_AUTH_METHOD)"
        )
    return value


def _authority(env: Mapping[str, str]) -> dict[str, str]:
    host = env.get("AZURE_AUTHORITY_HOST")
    return {"authority": host} if host else {}


def _spn_details(tenant_id: str, client_id: str, options: Mapping[str, Any]) -> dict[str, str]:
    details = {"tenant_id": tenant_id, "client_id": client_id}
    if options.get("authority"):
        details["authority"] = str(options["authority"])
    return details


def _require(values: Mapping[str, str]) -> None:
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise CredentialConfigurationError(f"{', '.join(missing)} must not be empty")


def _check_scope(scope: str) -> None:
    if not scope or scope != scope.strip() or any(char.isspace() for char in scope):
        raise CredentialConfigurationError(
            f"scope {scope!r} is not a valid scope; use e.g. https://storage.azure.com/.default"
        )


_default_guard = threading.Lock()
_default_provider: AzureCredentialProvider | None = None


def get_default_provider() -> AzureCredentialProvider:
    """The process-wide provider, built from the environment on first use."""
    global _default_provider
    with _default_guard:
        if _default_provider is None:
            _default_provider = AzureCredentialProvider.from_env()
        return _default_provider


def set_default_provider(provider: AzureCredentialProvider | None) -> None:
    """Replace the process-wide provider; None makes the next `get_default_provider` rebuild it."""
    global _default_provider
    with _default_guard:
        _default_provider = provider
