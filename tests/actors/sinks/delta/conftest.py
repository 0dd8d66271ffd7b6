"""An Azurite blob emulator for the Delta sink's Azure tests, started once per session.

Uses `.cache/azurite` of the repository (git-ignored), installing azurite@3 there with
npm when it is missing. Azurite that cannot be had fails the tests that need it.

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
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from delta_testing import ACCOUNT, Azurite, InjectedFailure

ROOT = Path(__file__).resolve().parents[3]
AZURITE_DIR = ROOT / ".cache" / "azurite"
AZURITE_BIN = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _install() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("Azurite is needed and npm is not installed to install it")
    result = subprocess.run(
        [npm, "install", "--prefix", str(AZURITE_DIR), "azurite@3"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not AZURITE_BIN.exists():
        pytest.fail(f"installing azurite@3 failed: {result.stderr[-2000:]}")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A blob emulator on a free loopback port, for this test session."""
    if not AZURITE_BIN.exists():
        _install()
    data = tmp_path_factory.mktemp("azurite")
    port = _free_port()
    log = (data / "azurite.log").open("w")
    process = subprocess.Popen(
        [
            str(AZURITE_BIN),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--location",
            str(data),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Azurite did not start: {(data / 'azurite.log').read_text()}")
                time.sleep(0.1)
        failure = InjectedFailure()
        proxy = _start_from_proxy(port, failure)
        try:
            yield Azurite(f"http://127.0.0.1:{proxy.server_address[1]}/{ACCOUNT}", failure)
        finally:
            proxy.shutdown()
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
