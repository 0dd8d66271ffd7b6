"""A local HTTPS file server for download tests and the download benchmark.

It listens on ::1 only, with a certificate from a `ThrowawayCA` for `files.test`,
`rebind.test`, `localhost` and ::1, so tests reach it through host names their
injected resolver maps to ::1 (the download policy trusts ::1 in tests; 127.0.0.1
stays forbidden, which is what the redirect tests need). Routes:

    /files/NAME                 a registered file (200, Content-Length, its content type)
    /redirect?to=URL            302 to URL
    /chain/N                    302 to /chain/N-1 ... /chain/0 serves "end of chain"
    /no-location                302 without a Location header
    /endless                    200 without Content-Length, 64 KiB chunks until the client leaves
    /huge-declared              200 declaring a 1 TB body
    /slow                       200 with headers at once, the body after `slow_seconds`
    /status/CODE?retry_after=V  that status, with Retry-After: V when given

It records every request's path, Host header and TLS server name (SNI).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from throwaway_ca import ThrowawayCA

SERVER_NAMES = ["files.test", "rebind.test", "other.files.test", "localhost"]
_CHUNK = b"x" * 65536


@dataclass
class ServedRequest:
    """What the server saw of one request."""

    path: str
    host_header: str | None
    server_name: str | None


class _Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256


class AttachmentServer:
    """The server; `port` is where it listens on ::1."""

    def __init__(self, ca: ThrowawayCA) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.requests: list[ServedRequest] = []
        self.slow_seconds = 5.0
        self.endless_bytes_sent = 0
        self._lock = threading.Lock()
        self._server_names: dict[int, str | None] = {}
        certificate = ca.issue("attachment-server", SERVER_NAMES, ["::1"])
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate.key_and_chain_pem)
        context.sni_callback = self._remember_server_name
        self._server = _Server(("::1", 0), self._handler_class())
        # The handshake runs in each connection's own thread (on its first read), not in
        # the accepting thread, so many clients connecting at once are not served in line.
        self._server.socket = context.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        """The listening port."""
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "files.test") -> str:
        """`https://HOST:PORT/PATH`."""
        return f"https://{host}:{self.port}/{path.lstrip('/')}"

    def add_file(self, name: str, content: bytes, content_type: str = "application/pdf") -> str:
        """Serve `content` at /files/NAME; returns its URL on files.test."""
        self.files[name] = (content, content_type)
        return self.url(f"files/{name}")

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _remember_server_name(
        self, connection: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: Any
    ) -> None:
        with self._lock:
            self._server_names[id(connection)] = name

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            name = self._server_names.get(id(handler.connection))
            self.requests.append(ServedRequest(handler.path, handler.headers.get("Host"), name))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

            def do_GET(self) -> None:
                server._record(self)
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                segments = parts.path.strip("/").split("/")
                route = segments[0]
                try:
                    if route == "files" and len(segments) == 2 and segments[1] in server.files:
                        content, content_type = server.files[segments[1]]
                        self._send(200, content, content_type)
                    elif route == "redirect":
                        self._redirect(query["to"])
                    elif route == "chain":
                        hops = int(segments[1])
                        if hops == 0:
                            self._send(200, b"end of chain", "text/plain")
                        else:
                            self._redirect(f"/chain/{hops - 1}")
                    elif route == "no-location":
                        self._send(302, b"", "text/plain")
                    elif route == "endless":
                        self._endless()
                    elif route == "huge-declared":
                        self.send_response(200)
                        self.send_header("Content-Length", str(10**12))
                        self.end_headers()
                        self.wfile.write(_CHUNK)
                    elif route == "slow":
                        self.send_response(200)
                        self.send_header("Content-Length", "10")
                        self.end_headers()
                        self.wfile.flush()
                        time.sleep(server.slow_seconds)
                        self.wfile.write(b"0123456789")
                    elif route == "status":
                        extra = {}
                        if "retry_after" in query:
                            extra["Retry-After"] = query["retry_after"]
                        self._send(int(segments[1]), b"status body", "text/plain", extra)
                    else:
                        self._send(404, b"not found", "text/plain")
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self.close_connection = True

            def _redirect(self, location: str) -> None:
                self._send(302, b"", "text/plain", {"Location": location})

            def _endless(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                while True:
                    self.wfile.write(_CHUNK)
                    with server._lock:
                        server.endless_bytes_sent += len(_CHUNK)

            def _send(
                self,
                status: int,
                body: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


@contextmanager
def running_attachment_server(directory: Path) -> Iterator[tuple[AttachmentServer, ThrowawayCA]]:
    """A started server with a fresh CA under `directory`; stopped on exit."""
    ca = ThrowawayCA(directory)
    server = AttachmentServer(ca)
    server.start()
    try:
        yield server, ca
    finally:
        server.stop()
