"""A tiny HTTP endpoint for probes and scrapes: /healthz, /readyz, /metrics.

Deliberately minimal (GET/HEAD, one request per connection, 8 KiB header limit) and
built on anyio's TCP listener, so it runs as one more supervised child of the process
without a web framework. The checks are callables, evaluated at request time, so the
answers always reflect the current state of the actors.

There is no authentication: whoever reaches the port reads /metrics (topic names, the
consumer group, partitions, offsets, lag, counts of handled, failed and dead-lettered
records, breaker states, the token's time to expiry: no record data, no secrets). Bound
beyond loopback (a container's 0.0.0.0, for the kubelet and the scraper), the server
logs a warning naming the addresses, so the exposure is a decision someone made.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import Listener, SocketAttribute, SocketStream, TaskStatus

__all__ = ["Check", "HealthServer"]

_log = logging.getLogger("supervisor.health")

_MAX_HEADER_BYTES = 8192
_READ_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of a probe: `ok`, and the reasons shown in the response body."""

    ok: bool
    reasons: tuple[str, ...] = ()

    def body(self) -> bytes:
        lines = ["ok" if self.ok else "not ok", *self.reasons]
        return ("\n".join(lines) + "\n").encode()


class HealthServer:
    """Serves liveness, readiness and Prometheus metrics on `host:port` (port 0: any free)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        live: Callable[[], Check],
        ready: Callable[[], Check],
        metrics: Callable[[], tuple[bytes, str]],
    ) -> None:
        self.host = host
        self.port = port
        self._routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {
            "/healthz": lambda: _probe(live()),
            "/readyz": lambda: _probe(ready()),
            "/metrics": lambda: (200, *metrics()),
        }

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; reports the bound port through `task_status.started`."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
            exposed = _beyond_loopback(listener)
            if exposed:
                _log.warning(
                    "health endpoint listens beyond loopback on %s port %d: anyone who can "
                    "reach it reads /metrics (topics, group, offsets, lag, counts; no "
                    "record data or secrets)",
                    ", ".join(exposed),
                    self.port,
                    extra={"event": "health_exposed", "addresses": exposed},
                )
            task_status.started(self.port)
            await listener.serve(self._serve_one)

    async def _serve_one(self, stream: SocketStream) -> None:
        async with stream:
            with anyio.move_on_after(_READ_TIMEOUT_S):
                request = await _read_head(stream)
                if request is None:
                    return
                method, target = request
                status, body, content_type = self._respond(method, target)
                head = (
                    f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                await stream.send(head if method == "HEAD" else head + body)

    def _respond(self, method: str, target: str) -> tuple[int, bytes, str]:
        if method not in ("GET", "HEAD"):
            return 405, b"method not allowed\n", "text/plain; charset=utf-8"
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return 404, b"not found: try /healthz, /readyz or /metrics\n", "text/plain"
        return route()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


def _beyond_loopback(listener: Listener[SocketStream]) -> list[str]:
    """The addresses `listener` is bound to that are not loopback addresses."""
    parts = getattr(listener, "listeners", None) or [listener]
    exposed = []
    for part in parts:
        address = part.extra(SocketAttribute.local_address)
        host = str(address[0] if isinstance(address, tuple) else address)
        try:
            loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:  # a UNIX socket path: not on the network
            loopback = True
        if not loopback:
            exposed.append(host)
    return exposed


def _probe(check: Check) -> tuple[int, bytes, str]:
    return (200 if check.ok else 503), check.body(), "text/plain; charset=utf-8"


async def _read_head(stream: SocketStream) -> tuple[str, str] | None:
    buffer = b""
    while b"\r\n\r\n" not in buffer and len(buffer) < _MAX_HEADER_BYTES:
        try:
            chunk = await stream.receive(4096)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
        buffer += chunk
    parts = buffer.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3:
        return None
    return parts[0], parts[1]
