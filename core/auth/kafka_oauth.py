"""SASL OAUTHBEARER tokens for aiokafka, from any `core.types.TokenProvider`.

aiokafka asks its `sasl_oauth_token_provider` for a token on every connection,
on the event loop. `EventHubsTokenProvider.token()` answers from the provider's
cache when the provider has one (a `cached_token(scope)` method returning the
token while it is fresh, as `AzureCredentialProvider` has: no thread hop, no
blocking), and otherwise runs the blocking `get_token(scope)` in a worker thread,
bounded by a timeout, so a hung `az` or token endpoint can neither freeze the loop
nor hang the connect. A provider without a cache is asked on every connection.

Which scope Event Hubs accepts: Microsoft's Event Hubs documentation names
`https://eventhubs.azure.net/` as the Entra resource for Event Hubs (the same
in every cloud and tenant), and, for Kafka clients, the namespace itself,
`https://<namespace>.servicebus.windows.net`. The Kafka endpoint accepts tokens
for either audience. `eventhubs_scope_for` builds the namespace scope (what
Microsoft's Kafka samples and the Azure SDK for Java's Kafka support request,
and which also works for sovereign-cloud namespaces given by FQDN); pass
`EVENTHUBS_SCOPE` to use the generic one instead, it is returned unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from aiokafka.abc import AbstractTokenProvider

from core.auth.errors import KafkaOAuthError
from core.errors import AuthError
from core.logging.error_text import error_text
from core.types import ErrorCategory, TokenProvider

__all__ = [
    "EVENTHUBS_DOMAIN",
    "EVENTHUBS_RESOURCE",
    "EVENTHUBS_SCOPE",
    "EventHubsTokenProvider",
    "KafkaOAuthError",
    "create_kafka_oauth_callback",
    "eventhubs_scope_for",
]

EVENTHUBS_RESOURCE: Final = "https://eventhubs.azure.net"
EVENTHUBS_SCOPE: Final = "https://eventhubs.azure.net/.default"
EVENTHUBS_DOMAIN: Final = "servicebus.windows.net"
"""The public cloud's namespace domain, appended to a bare namespace name."""

DEFAULT_TOKEN_TIMEOUT: Final = 30.0
"""Seconds `token()` waits for a credential (the Azure CLI's own limit is 10 s)."""

_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_URL_SCHEMES: Final = ("https", "sb")
_SCOPE_PATHS: Final = ("", "/", "/.default")


def eventhubs_scope_for(namespace_or_scope: str) -> str:
    """The token scope for an Event Hubs namespace, given in any of its usual forms.

    Accepts a namespace name (`myns`), its FQDN with or without a port
    (`myns.servicebus.windows.net:9093`, what bootstrap_servers holds), an
    `sb://` endpoint, or a scope/resource URL (`https://myns.servicebus.windows.net/.default`,
    `EVENTHUBS_RESOURCE`). Returns `https://<host>/.default`, host in lower case.
    Raises `KafkaOAuthError` (PERMANENT) naming what is wrong otherwise.
    """
    text = namespace_or_scope.strip()
    if "@" in text:
        raise KafkaOAuthError(
            "cannot derive an Event Hubs scope from a value with user info ('@') in it; "
            "give the namespace without credentials",
            category=ErrorCategory.PERMANENT,
        )
    host = _host_of_url(text) if "://" in text else _host_of_address(text)
    host = host.lower()
    if "." not in host:
        host = f"{host}.{EVENTHUBS_DOMAIN}"
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise _bad_namespace(namespace_or_scope, "it is not a valid host name")
    return f"https://{host}/.default"


def _host_of_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme.lower() not in _URL_SCHEMES:
        raise _bad_namespace(text, f"only {' and '.join(_URL_SCHEMES)} URLs name a namespace")
    if parts.path not in _SCOPE_PATHS or parts.query or parts.fragment:
        raise _bad_namespace(text, "a scope URL ends in /.default and has nothing else")
    return _host_of_address(parts.netloc)


def _host_of_address(address: str) -> str:
    host, colon, port = address.rpartition(":")
    if not colon:
        host = address
    elif not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise _bad_namespace(address, f"{port!r} is not a port number")
    if not host:
        raise _bad_namespace(address, "it is empty")
    return host


def _bad_namespace(given: str, reason: str) -> KafkaOAuthError:
    return KafkaOAuthError(
        f"cannot derive an Event Hubs scope from {given!r}: {reason}. Give the namespace "
        "name, its FQDN (myns.servicebus.windows.net), or a scope URL ending in /.default",
        category=ErrorCategory.PERMANENT,
    )


class EventHubsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's OAUTHBEARER token provider, backed by any `TokenProvider`."""

    def __init__(
        self,
        provider: TokenProvider,
        scope: str,
        *,
        timeout: float = DEFAULT_TOKEN_TIMEOUT,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self._provider = provider
        self._scope = scope
        self._timeout = timeout
        cached: Callable[[str], str | None] | None = getattr(provider, "cached_token", None)
        self._cached = cached if callable(cached) else None

    @property
    def scope(self) -> str:
        """The scope tokens are requested for."""
        return self._scope

    async def token(self) -> str:
        """A fresh token: from the cache if possible, else fetched in a worker thread."""
        if self._cached is not None:
            cached = self._cached(self._scope)
            if cached is not None:
                return cached
        try:
            with anyio.fail_after(self._timeout):
                return await anyio.to_thread.run_sync(
                    self._provider.get_token, self._scope, abandon_on_cancel=True
                )
        except TimeoutError as exc:
            raise KafkaOAuthError(
                f"no Event Hubs token for {self._scope} within {self._timeout:g}s; "
                "the credential is hanging (is the token endpoint or `az` reachable?)",
                category=ErrorCategory.TRANSIENT,
            ) from exc
        except AuthError as exc:
            raise KafkaOAuthError(
                f"no Event Hubs token for {self._scope}: {error_text(exc)}",
                category=exc.category,
            ) from exc

    def extensions(self) -> dict[str, str]:
        """No SASL extensions: Event Hubs needs none."""
        return {}

    def __repr__(self) -> str:
        method = getattr(self._provider, "method", type(self._provider).__name__)
        return f"EventHubsTokenProvider(scope={self._scope!r}, method={method!r})"


def create_kafka_oauth_callback(
    provider: TokenProvider,
    namespace_or_scope: str,
    *,
    timeout: float = DEFAULT_TOKEN_TIMEOUT,
) -> EventHubsTokenProvider:
    """aiokafka's `sasl_oauth_token_provider` for a namespace (see `eventhubs_scope_for`).

    `provider` is any `TokenProvider`; its `cached_token(scope)`, if it has one, is the
    fast path (see the module docstring).
    """
    return EventHubsTokenProvider(
        provider, eventhubs_scope_for(namespace_or_scope), timeout=timeout
    )
