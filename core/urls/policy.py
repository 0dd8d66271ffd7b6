"""The URL policy: which URLs a download may fetch, and which addresses it may dial.

`UrlPolicy.check_url` is pure: it parses, normalises and judges a URL and returns the
canonical URL to fetch. `UrlPolicy.resolve` is the only I/O: it resolves a host once
and judges every address in the answer; a host with one forbidden address is refused
as a whole (an attacker controlling DNS could otherwise mix one public address into an
answer and win the race for the private one). A caller that connects must dial one of
the returned addresses and no other (the download stage does, so DNS rebinding cannot
swap the address between the check and the connection).

Rules, in the order they are checked (the first one broken names the refusal):

1. MALFORMED: control characters, spaces or backslashes anywhere; an unparsable URL
   or port. Parsers disagree on these; refusing them leaves no room for a differential.
2. URL_TOO_LONG: longer than `max_url_length` (default 2048 characters).
3. SCHEME: https only (plain http can be redirected or rewritten on the way).
4. USERINFO: no `user:password@` (it hides the real host from people reading logs).
5. PORT: the port must be in `allowed_ports` (default 443 only).
6. INVALID_HOST / NUMERIC_HOST: see `core.urls.hosts`.
7. HOST_NOT_ALLOWED: the host must be in `allowed_hosts` or end in one of
   `allowed_domain_suffixes` (a suffix matches the domain and its subdomains:
   "example.com" matches example.com and cdn.example.com, not badexample.com).
8. FORBIDDEN_ADDRESS: an IP-literal host, or any resolved address, is in a forbidden
   range (see `core.urls.addresses`), including WireServer and cloud metadata.
9. NO_ADDRESS: the name resolved to nothing.

How tests stand in: a test server listens on 127.0.0.1, so tests build a policy with
`trusted_networks=[ip_network("127.0.0.1/32")]` and `allowed_ports` holding its port,
and inject `resolver` to answer for test host names (including answers that change
between lookups). The production defaults trust no network and resolve with the
system resolver.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import anyio

from core.errors import ConfigurationError
from core.urls.addresses import IPAddress, IPNetwork, forbidden_range_of
from core.urls.errors import RefusalRule, UrlRefusedError
from core.urls.hosts import NormalisedHost, normalise_host

__all__ = [
    "DEFAULT_MAX_URL_LENGTH",
    "Resolver",
    "UrlPolicy",
    "ValidatedUrl",
    "system_resolver",
    "url_for_logs",
]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`resolver(host, port)`: the addresses (as text) `host` resolves to."""

DEFAULT_MAX_URL_LENGTH: Final = 2048
_MAX_URL_LENGTH_RANGE: Final = (16, 65_536)
_FORBIDDEN_CHARACTERS: Final = re.compile(r"[\x00-\x20\x7f\\]")
_PATH_SAFE: Final = "!$&'()*+,/:;=@%-._~"
_QUERY_SAFE: Final = _PATH_SAFE + "?"


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Resolve `host` with the system resolver (getaddrinfo in a worker thread)."""
    answers = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(answer[4][0]) for answer in answers]


@dataclass(frozen=True, slots=True)
class ValidatedUrl:
    """A URL the policy accepted: `url` is its canonical form (no fragment)."""

    url: str
    host: NormalisedHost
    port: int


class UrlPolicy:
    """Decides which URLs may be fetched and which addresses may be dialed (thread-safe)."""

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_domain_suffixes: Iterable[str] = (),
        allowed_ports: Iterable[int] = (443,),
        max_url_length: int = DEFAULT_MAX_URL_LENGTH,
        trusted_networks: Iterable[IPNetwork] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        """Every entry is normalised like a URL's host; a bad entry is a ConfigurationError."""
        self.allowed_hosts = frozenset(
            _config_host(host, "allowed_hosts") for host in allowed_hosts
        )
        self.allowed_domain_suffixes = tuple(
            _config_host(suffix.removeprefix("."), "allowed_domain_suffixes")
            for suffix in allowed_domain_suffixes
        )
        self.allowed_ports = frozenset(allowed_ports)
        for port in self.allowed_ports:
            if not 1 <= port <= 65_535:
                raise ConfigurationError(f"allowed_ports: {port!r} is not a port (1-65535)")
        low, high = _MAX_URL_LENGTH_RANGE
        if not low <= max_url_length <= high:
            raise ConfigurationError(
                f"max_url_length must be between {low} and {high}, got {max_url_length!r}"
            )
        self.max_url_length = max_url_length
        self.trusted_networks: tuple[IPNetwork, ...] = tuple(trusted_networks)
        self._resolver = resolver

    def __repr__(self) -> str:
        return (
            f"UrlPolicy(allowed_hosts={sorted(self.allowed_hosts)}, "
            f"allowed_domain_suffixes={list(self.allowed_domain_suffixes)}, "
            f"allowed_ports={sorted(self.allowed_ports)})"
        )

    def check_url(self, url: str) -> ValidatedUrl:
        """The canonical form of `url` if every rule allows it; UrlRefusedError otherwise."""
        if _FORBIDDEN_CHARACTERS.search(url):
            raise _refused(RefusalRule.MALFORMED, "control characters, spaces or backslashes", url)
        if len(url) > self.max_url_length:
            raise _refused(
                RefusalRule.URL_TOO_LONG,
                f"{len(url)} characters, the maximum is {self.max_url_length}",
                url,
            )
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise _refused(RefusalRule.MALFORMED, str(exc), url) from None
        if parts.scheme.lower() != "https":
            raise _refused(RefusalRule.SCHEME, f"scheme {parts.scheme!r} is not https", url)
        if "@" in parts.netloc:
            raise _refused(RefusalRule.USERINFO, "user names and passwords are not allowed", url)
        port = 443 if port is None else port
        self.check_port(port)
        bracketed = parts.netloc.startswith("[")
        host = self.check_host(parts.hostname or "", bracketed=bracketed)
        path = urllib.parse.quote(parts.path or "/", safe=_PATH_SAFE)
        query = urllib.parse.quote(parts.query, safe=_QUERY_SAFE)
        authority = host.for_url if port == 443 else f"{host.for_url}:{port}"
        canonical = f"https://{authority}{path}" + (f"?{query}" if query else "")
        return ValidatedUrl(canonical, host, port)

    def check_port(self, port: int) -> None:
        """UrlRefusedError (PORT) unless `port` is allowed."""
        if port not in self.allowed_ports:
            raise UrlRefusedError(
                RefusalRule.PORT,
                f"port {port} is not among the allowed ports {sorted(self.allowed_ports)}",
                context={"port": port},
            )

    def check_host(self, raw_host: str, *, bracketed: bool = False) -> NormalisedHost:
        """The normalised host if it is allowed (and, for an IP literal, its address too)."""
        host = normalise_host(raw_host, bracketed=bracketed)
        if not self._is_allowed_name(host.name):
            raise UrlRefusedError(
                RefusalRule.HOST_NOT_ALLOWED,
                f"host {host.name!r} is not in the allowed hosts or domains",
                context={"host": host.name},
            )
        if host.address is not None:
            self.check_address(host.address, host.name)
        return host

    def check_address(self, address: IPAddress, host: str) -> None:
        """UrlRefusedError (FORBIDDEN_ADDRESS) if `address` is in a forbidden range."""
        verdict = forbidden_range_of(address, self.trusted_networks)
        if verdict is not None:
            raise UrlRefusedError(
                RefusalRule.FORBIDDEN_ADDRESS,
                f"host {host!r} is at {address}, in {verdict.describe()}",
                context={"host": host, "address": str(address), "range": verdict.name},
            )

    async def resolve(self, host: NormalisedHost, port: int) -> tuple[IPAddress, ...]:
        """The addresses to dial for `host`: resolved once, every one of them allowed.

        Resolution failures propagate as the resolver raises them (socket.gaierror is
        TRANSIENT: DNS outages end; the caller's breaker decides when to stop trying).
        """
        if host.address is not None:
            self.check_address(host.address, host.name)
            return (host.address,)
        answers = await self._resolver(host.name, port)
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer.partition("%")[0])
            except ValueError:
                raise UrlRefusedError(
                    RefusalRule.NO_ADDRESS,
                    f"host {host.name!r} resolved to {answer!r}, which is not an address",
                    context={"host": host.name},
                ) from None
            self.check_address(address, host.name)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UrlRefusedError(
                RefusalRule.NO_ADDRESS,
                f"host {host.name!r} resolved to no address",
                context={"host": host.name},
            )
        return tuple(addresses)

    def _is_allowed_name(self, name: str) -> bool:
        if name in self.allowed_hosts:
            return True
        return any(
            name == suffix or name.endswith("." + suffix) for suffix in self.allowed_domain_suffixes
        )


def _config_host(entry: str, setting: str) -> str:
    try:
        host = normalise_host(entry.strip("[]"), bracketed=entry.startswith("["))
    except UrlRefusedError as exc:
        raise ConfigurationError(f"{setting}: {entry!r} is not a host name ({exc})") from None
    return host.name


def url_for_logs(url: str) -> str:
    """The URL for logs and errors: query and fragment cut (they may hold signed tokens),
    at most 200 characters."""
    return url.partition("?")[0].partition("#")[0][:200]


def _refused(rule: RefusalRule, reason: str, url: str) -> UrlRefusedError:
    return UrlRefusedError(rule, reason, context={"url": url_for_logs(url)})
