"""An httpx transport that can only dial addresses the URL policy allowed.

The check sits where the socket is opened, not before the request: httpcore asks its
network backend to `connect_tcp(host, port)` with the host of the URL it is about to
fetch, and `PinnedNetworkBackend` answers by checking that host against the policy's
allow-list, resolving it exactly once, refusing it if any address of the answer is
forbidden, and connecting to those validated addresses only (in the order of the
answer). httpcore then runs TLS over that socket with SNI and certificate verification
on the original host name, and httpx sends the original Host header. So:

* DNS rebinding cannot swap the address between the check and the connection: there is
  no second lookup.
* Nothing bypasses the check: redirects, a URL spelled so that another parser reads a
  different host, and keep-alive connections all end in this method (a pooled
  connection was checked when it was opened).
* Proxies are off (`trust_env=False`): a proxy would do its own resolution.

httpx has no public setting for the network backend, so `PinnedTransport` builds
httpx's own transport and replaces its connection pool with an identical one that
uses the pinned backend; httpx's request/response mapping and exception mapping stay
as they are. A refusal (`UrlRefusedError`) is not an httpcore exception, so it passes
through httpcore and httpx unchanged.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable

import anyio
import httpcore
import httpx

from core.urls import UrlPolicy

__all__ = ["PinnedNetworkBackend", "PinnedTransport"]

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Dials only addresses `policy` allowed for the host, resolved once per connection."""

    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Check `host` and `port`, resolve once, dial the first allowed address that answers."""
        self._policy.check_port(port)
        is_ipv6_literal = ":" in host  # httpcore passes IPv6 literals without brackets
        normalised = self._policy.check_host(host.strip("[]"), bracketed=is_ipv6_literal)
        try:
            with anyio.fail_after(timeout):
                addresses = await self._policy.resolve(normalised, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() never returns an empty tuple
        raise failure

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop (httpcore's connect retries; unused with retries=0)."""
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport with the pinned backend and no proxies."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=PinnedNetworkBackend(policy),
        )
