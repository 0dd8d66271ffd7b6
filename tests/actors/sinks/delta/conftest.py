"""An Azurite blob emulator for the Delta sink's Azure tests, started once per session.

Azurite is the one scripts/_azurite.sh installs (tests/support/azurite_emulator.py);
Azurite that cannot be had fails the tests that need it.

Azurite 3.35 ignores the List Blobs `startFrom` parameter (Azure/Azurite#2619), which
delta-rs 1.6 uses to list the log from a version on: from the table's second commit on
every read fails with "Invalid table version". So the tests reach Azurite through a small
loopback proxy that applies `startFrom` to the listing Azurite returns (dropping blobs
named before it); requests pass unchanged, so their SharedKey signatures still hold.
The same proxy can answer with an injected failure instead (`Azurite.failure`), so the
object store client meets throttling and refusals as the real service words them.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azurite_emulator import running_azurite
from delta_testing import ACCOUNT, Azurite, InjectedFailure

_BLOB = re.compile(rb"<Blob>.*?</Blob>", re.DOTALL)
_NAME = re.compile(rb"<Name>(.*?)</Name>", re.DOTALL)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def _start_from_proxy(upstream_port: int, failure: InjectedFailure) -> ThreadingHTTPServer:
    """A loopback proxy to Azurite that honours `startFrom` on blob listings, and sends
    `failure` instead of forwarding while it has a status."""

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if failure.status is not None:
                self._fail(failure)
                return
            upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            start = query.get("startFrom")
            if start and query.get("comp") == ["list"]:
                first = start[0].encode()
                payload = _BLOB.sub(
                    lambda blob: blob.group(0) if _name(blob.group(0)) >= first else b"",
                    payload,
                )
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            upstream.close()

        def _fail(self, failure: InjectedFailure) -> None:
            payload = (
                '<?xml version="1.0" encoding="utf-8"?><Error><Code>'
                f"{failure.code}</Code><Message>injected by the test</Message></Error>"
            ).encode()
            self.send_response(failure.status or 500, failure.reason)
            self.send_header("x-ms-error-code", failure.code)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 (http.server)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the emulator keeps its own log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _name(blob: bytes) -> bytes:
    found = _NAME.search(blob)
    return found.group(1) if found else b""


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A blob emulator on a free loopback port behind the `startFrom` proxy, for this
    test session (tests/support/azurite_emulator.py starts and stops it)."""
    data = tmp_path_factory.mktemp("azurite")
    try:
        with running_azurite(data, data / "azurite.log") as emulator:
            failure = InjectedFailure()
            proxy = _start_from_proxy(emulator.port, failure)
            try:
                yield Azurite(f"http://127.0.0.1:{proxy.server_address[1]}/{ACCOUNT}", failure)
            finally:
                proxy.shutdown()
    except RuntimeError as exc:  # raised only by starting it: tests do not raise into here
        pytest.fail(f"Azurite did not start: {exc}")
