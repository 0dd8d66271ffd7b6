"""Azurite's blob service, started for a test session on a free loopback port.

Azurite is Microsoft's Azure Storage emulator (npm `azurite@3`, installed by
scripts/_azurite.sh into .cache/azurite). The real azure-storage-blob client talks to
it with Azurite's well-known shared key over plain HTTP. (Azurite accepts OAuth tokens
only over HTTPS with its own certificate, so the token-credential path is tested on
its own; OneLake's endpoint and Entra ID cannot be reached from here.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Azurite:
    """A running Azurite blob service."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def account_url(self) -> str:
        """The blob endpoint of the emulator's account."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"


def azurite_binary() -> Path:
    """The azurite-blob executable: $AZURITE_BLOB_BIN, or the one scripts/_azurite.sh installs."""
    configured = os.environ.get("AZURITE_BLOB_BIN")
    path = (
        Path(configured) if configured else _REPO / ".cache/azurite/node_modules/.bin/azurite-blob"
    )
    if not path.exists():
        raise RuntimeError(
            f"azurite-blob not found at {path}: run `source scripts/_azurite.sh` "
            "(needs Node.js and npm) or set AZURITE_BLOB_BIN"
        )
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_azurite(location: Path, log_path: Path, *, timeout: float = 60.0) -> Iterator[Azurite]:
    """Start azurite-blob storing under `location`; stop it (by its PID) on exit."""
    binary = azurite_binary()
    port = _free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(binary),
                "--skipApiVersionCheck",
                "--location",
                str(location),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"azurite-blob exited with {process.returncode}: {log_path.read_text()[-2000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"azurite-blob did not listen on port {port} in {timeout}s"
                    ) from None
                time.sleep(0.1)
        yield Azurite(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
