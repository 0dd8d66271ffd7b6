"""The download stage: fetch one URL into a temporary file, safely, and say what it got.

One `Downloader` is shared by every concurrent download (it holds one connection pool).
A download:

1. is checked by the URL policy (pure; a refused URL never reaches the network nor the
   host's breaker);
2. runs through the circuit breaker of its host (see `host_breakers`); a TRANSIENT
   failure that leaves the breaker open (it opened it, or failed the trial) is raised
   as `CircuitOpenError` chained to the download's error, so the consumer pauses at
   once instead of spending retries on a host that is down;
3. sends GET with `Accept-Encoding: identity` (the stored bytes are the served bytes, and
   a compressed bomb cannot slip past the size cap) through `PinnedTransport`, which
   dials only addresses the policy allowed;
4. follows redirects itself, checking every Location with the policy, up to
   `max_redirects` hops (a 303 or any other redirect is followed with GET);
5. refuses a body whose Content-Length, or whose streamed size, exceeds `max_bytes`
   (stopping the transfer at the cap), and a Content-Type outside `content_types`
   when that list is set;
6. streams the body to a `BodySpool`, hashing it on the way.

Timeouts: `connect_timeout_s` per connection (DNS included), `read_timeout_s` between two
reads, `total_timeout_s` for the whole download including redirects. Failures are
classified in `download_errors`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import httpx

from actors.attachments.download_errors import error_for_status, parse_retry_after
from actors.attachments.host_breakers import HostBreakers
from actors.attachments.pinned_network import PinnedTransport
from actors.attachments.spool import BodySpool
from core.errors import CircuitOpenError, ConfigurationError, DownloadError
from core.resilience import CircuitState
from core.types import ErrorCategory
from core.urls import UrlPolicy, ValidatedUrl, url_for_logs

__all__ = ["DownloadLimits", "DownloadedFile", "Downloader"]

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_USER_AGENT: Final = "kafka-pipeline-attachments/1"


@dataclass(frozen=True, slots=True)
class DownloadLimits:
    """What one download may take; every field has a safe default and a range."""

    max_bytes: int = 100 * 1024 * 1024
    """Largest body accepted, in bytes (1 B - 50 GiB)."""
    max_redirects: int = 5
    """Redirect hops followed before giving up (0-20)."""
    connect_timeout_s: float = 10.0
    """Seconds to resolve and connect (0 < t <= 300)."""
    read_timeout_s: float = 30.0
    """Seconds allowed between two reads (0 < t <= 600)."""
    total_timeout_s: float = 300.0
    """Seconds for the whole download, redirects included (0 < t <= 86400)."""
    content_types: frozenset[str] = field(default_factory=frozenset)
    """Media types accepted (`type/subtype` or `type/*`); empty accepts any."""
    max_retry_after_s: float = 600.0
    """Longest Retry-After honoured, in seconds (0-86400)."""
    max_connections: int = 64
    """Connections the shared pool keeps open at most (1-1000)."""

    def __post_init__(self) -> None:
        _require("max_bytes", self.max_bytes, 1, 50 * 1024**3)
        _require("max_redirects", self.max_redirects, 0, 20)
        _require("connect_timeout_s", self.connect_timeout_s, 0, 300, open_low=True)
        _require("read_timeout_s", self.read_timeout_s, 0, 600, open_low=True)
        _require("total_timeout_s", self.total_timeout_s, 0, 86_400, open_low=True)
        _require("max_retry_after_s", self.max_retry_after_s, 0, 86_400)
        _require("max_connections", self.max_connections, 1, 1000)
        for media_type in self.content_types:
            kind, slash, subtype = media_type.partition("/")
            if not (kind and slash and subtype) or media_type != media_type.lower().strip():
                raise ConfigurationError(
                    f"content_types: {media_type!r} is not a lower-case 'type/subtype' or 'type/*'"
                )


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """A body that landed in `path` (a temporary file the caller now owns)."""

    path: Path
    size: int
    sha256: str
    content_type: str | None
    url: str
    """The URL the body came from (after redirects), without its query."""


class Downloader:
    """Fetches URLs under `policy` and `limits`; safe to share between concurrent tasks."""

    def __init__(
        self,
        policy: UrlPolicy,
        limits: DownloadLimits | None = None,
        *,
        breakers: HostBreakers | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """`verify` is the TLS trust: True for the system's CAs (via certifi), or a context."""
        self.policy = policy
        self.limits = limits or DownloadLimits()
        self.breakers = breakers or HostBreakers()
        transport = PinnedTransport(
            policy,
            verify=verify,
            limits=httpx.Limits(
                max_connections=self.limits.max_connections,
                max_keepalive_connections=self.limits.max_connections,
            ),
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(
                connect=self.limits.connect_timeout_s,
                read=self.limits.read_timeout_s,
                write=self.limits.read_timeout_s,
                pool=self.limits.total_timeout_s,
            ),
            headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
        )

    async def download(self, url: str, directory: Path) -> DownloadedFile:
        """Fetch `url` into a new temporary file in `directory` (see the module docstring)."""
        first = self.policy.check_url(url)
        breaker = self.breakers.for_host(first.host.name)
        try:
            return await breaker.call_async(self._download_within_deadline, first, directory)
        except DownloadError as exc:
            if exc.category is ErrorCategory.TRANSIENT and breaker.state is CircuitState.OPEN:
                # This failure opened the breaker (or failed its trial): report the host as
                # down, so the consumer pauses now instead of retrying into the open breaker.
                raise CircuitOpenError(
                    breaker.name, breaker.retry_after(), context={"cause": exc.message}
                ) from exc
            raise

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _download_within_deadline(
        self, first: ValidatedUrl, directory: Path
    ) -> DownloadedFile:
        try:
            with anyio.fail_after(self.limits.total_timeout_s):
                return await self._follow(first, directory)
        except TimeoutError as exc:
            raise _transient(
                f"download of {url_for_logs(first.url)} took longer than "
                f"{self.limits.total_timeout_s}s",
                first.url,
            ) from exc
        except httpx.TimeoutException as exc:
            raise _transient(
                f"download of {url_for_logs(first.url)} timed out ({type(exc).__name__})",
                first.url,
            ) from exc
        except httpx.TransportError as exc:
            raise _transient(
                f"download of {url_for_logs(first.url)} failed: {type(exc).__name__}: {exc}",
                first.url,
            ) from exc

    async def _follow(self, hop: ValidatedUrl, directory: Path) -> DownloadedFile:
        for redirects in range(self.limits.max_redirects + 1):
            request = self._client.build_request("GET", hop.url)
            response = await self._client.send(request, stream=True)
            try:
                if response.status_code in _REDIRECTS:
                    hop = self._next_hop(response, hop, redirects)
                    continue
                if response.status_code != 200:
                    raise error_for_status(
                        response.status_code,
                        url_for_logs(hop.url),
                        retry_after=parse_retry_after(
                            response.headers.get("Retry-After"), cap=self.limits.max_retry_after_s
                        ),
                    )
                return await self._receive(response, hop, directory)
            finally:
                await response.aclose()
        raise AssertionError("unreachable: the last hop returns or raises")  # pragma: no cover

    def _next_hop(
        self, response: httpx.Response, hop: ValidatedUrl, redirects: int
    ) -> ValidatedUrl:
        location = response.headers.get("Location")
        if not location:
            raise _permanent(
                f"{url_for_logs(hop.url)} answered HTTP {response.status_code} without a Location",
                hop.url,
                response.status_code,
            )
        if redirects >= self.limits.max_redirects:
            raise _permanent(
                f"{url_for_logs(hop.url)} redirected more than {self.limits.max_redirects} times",
                hop.url,
                response.status_code,
            )
        target = str(response.url.join(location))
        return self.policy.check_url(target)

    async def _receive(
        self, response: httpx.Response, hop: ValidatedUrl, directory: Path
    ) -> DownloadedFile:
        content_type = response.headers.get("Content-Type")
        self._check_content_type(content_type, hop)
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.limits.max_bytes:
            raise self._too_large(hop, f"Content-Length {declared}")
        spool = BodySpool(directory)
        try:
            async for chunk in response.aiter_raw():
                if spool.size + len(chunk) > self.limits.max_bytes:
                    raise self._too_large(hop, "the body")
                await spool.add(chunk)
            sha256 = await spool.finish()
        except BaseException:
            spool.discard()
            raise
        return DownloadedFile(spool.path, spool.size, sha256, content_type, url_for_logs(hop.url))

    def _check_content_type(self, content_type: str | None, hop: ValidatedUrl) -> None:
        allowed = self.limits.content_types
        if not allowed:
            return
        media_type = (content_type or "").partition(";")[0].strip().lower()
        wildcard = media_type.partition("/")[0] + "/*"
        if media_type not in allowed and wildcard not in allowed:
            raise _permanent(
                f"{url_for_logs(hop.url)} is {media_type or 'of no content type'}, "
                f"not one of {sorted(allowed)}",
                hop.url,
                200,
            )

    def _too_large(self, hop: ValidatedUrl, what: str) -> DownloadError:
        return _permanent(
            f"{url_for_logs(hop.url)}: {what} exceeds max_bytes ({self.limits.max_bytes})",
            hop.url,
            200,
        )


def _transient(message: str, url: str) -> DownloadError:
    return DownloadError(
        message, category=ErrorCategory.TRANSIENT, context={"url": url_for_logs(url)}
    )


def _permanent(message: str, url: str, status: int) -> DownloadError:
    return DownloadError(
        message,
        status_code=status,
        category=ErrorCategory.PERMANENT,
        context={"url": url_for_logs(url)},
    )


def _require(name: str, value: float, low: float, high: float, *, open_low: bool = False) -> None:
    too_low = value <= low if open_low else value < low
    if too_low or value > high or value != value:
        bound = f"> {low}" if open_low else f">= {low}"
        raise ConfigurationError(f"{name} must be {bound} and <= {high}, got {value!r}")
