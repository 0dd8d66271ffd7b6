"""An Apache Kafka broker (KRaft, one node as broker and controller) on loopback, for the tests.

The reference broker of the test suite: the jars come from Maven Central through the
project's own pom (tests/support/apache-kafka/pom.xml) and `scripts/_kafka.sh`, which
copies them to `.cache/apache-kafka/libs`. This module formats the storage
(`kafka.tools.StorageTool format`, SCRAM users included, since KRaft stores credentials
in the metadata log from the start) and runs `kafka.Kafka` on free loopback ports.

Tuned for tests, not throughput: one replica of everything (internal topics included),
one partition per auto-created topic (the tests create theirs explicitly; auto-creation
stays on as in a stock broker), `group.initial.rebalance.delay.ms=0` so a group forms at
once, a 500 ms minimum session timeout so tests can notice a dead member in seconds,
a 2 s broker session (after a `kill -9` the controller forgets the dead incarnation
in 2 s instead of 9 s, and the restarted broker registers at once),
1 MB segments, two network and I/O threads, a small heap and a JVM that starts fast
(C1 only, serial GC). Startup is dominated by class loading on a busy machine, so the
first broker that stops gracefully leaves a class-data-sharing archive next to the jars
and later JVMs map it (measured: about twice as fast to start).

The storage lives in `directory/data` and outlives `stop()`, `kill()` and `restart()`:
outage tests restart the same broker and find their topics, records and committed
offsets. `close()` (or leaving the `with` block) removes a directory this object created.
The broker is a child process this object alone stops, by its PID: SIGTERM first
(a controlled shutdown), SIGKILL after a deadline; `kill()` is a crash.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from core.errors import ConfigurationError
from supervisor.testing.embedded_broker import free_port, wait_for_port

__all__ = ["ApacheKafkaBroker", "find_kafka_libs"]

LIBS_ENV = "APACHE_KAFKA_LIBS"
"""Names a directory of Kafka jars to use instead of the repository's cache."""

_LOOPBACK = "127.0.0.1"
_CACHE_LIBS = Path(".cache") / "apache-kafka" / "libs"
_RESOLVED_MARKER = ".resolved"
_CLASS_ARCHIVE = "classes.jsa"
_STARTED_LINE = b"Kafka Server started"
_NODE_ID = 1

TEST_PROPERTIES: Mapping[str, str] = {
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "share.coordinator.state.topic.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "2000",
    "auto.create.topics.enable": "true",
    "log.segment.bytes": "1048576",
    "log.cleaner.dedupe.buffer.size": "4194304",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
}
"""Broker settings for a fast single-node test broker (see the module docstring)."""

JVM_OPTIONS: Sequence[str] = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
)
"""A small heap and the JVM flags that start a broker fastest."""


def find_kafka_libs() -> Path:
    """The directory of the broker's jars: $APACHE_KAFKA_LIBS, else the repository's cache."""
    explicit = os.environ.get(LIBS_ENV)
    if explicit:
        path = Path(explicit)
        if not any(path.glob("kafka_*.jar")):
            raise ConfigurationError(f"{LIBS_ENV}={explicit}: no kafka_*.jar in that directory")
        return path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / _CACHE_LIBS
        if (candidate / _RESOLVED_MARKER).is_file():
            return candidate
        if (parent / "pyproject.toml").is_file():
            break
    raise ConfigurationError(
        "the Apache Kafka test broker's jars are missing: run `bash scripts/_kafka.sh` "
        "(or scripts/test), which needs Java 17+ and Maven, or set "
        f"{LIBS_ENV} to a directory of Kafka 4.x jars"
    )


def _find_java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path is None:
        raise ConfigurationError("the Apache Kafka test broker needs Java 17+ (`java` on PATH)")
    return on_path


def _properties_text(properties: Mapping[str, str]) -> str:
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n")

    return "".join(f"{key}={escape(value)}\n" for key, value in properties.items())


def _log4j_config(log_file: Path) -> str:
    return "\n".join(
        [
            "appender.file.type = File",
            "appender.file.name = file",
            f"appender.file.fileName = {log_file}",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = file",
            "",
        ]
    )


def new_cluster_id() -> str:
    """A random KRaft cluster id that never starts with a dash.

    Kafka's own ``Uuid.randomUuid`` skips such ids: the storage tool's argument parser reads
    ``--cluster-id -abc`` as a missing value followed by an unknown option, and about one
    id in 64 would fail to format the broker's storage.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


class ApacheKafkaBroker:
    """A single-node KRaft Apache Kafka on `127.0.0.1`, restartable on its ports and storage.

    `listeners` adds client listeners ({name: security protocol}, e.g.
    {"SASL_SSL": "SASL_SSL"}) beside PLAINTEXT, each on a free port (`port_of(name)`);
    `properties` overrides or adds broker settings (listener-prefixed SASL settings, say);
    `scram_users` ({"SCRAM-SHA-512": {name: password}}) are written at format time;
    `system_properties` become `-D` options of the JVM.
    """

    def __init__(
        self,
        *,
        directory: Path | None = None,
        listeners: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        scram_users: Mapping[str, Mapping[str, str]] | None = None,
        system_properties: Mapping[str, str] | None = None,
        libs: Path | None = None,
    ) -> None:
        self._owns_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="apache-kafka-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ports = {"PLAINTEXT": free_port()}
        self._protocols = {"PLAINTEXT": "PLAINTEXT"}
        for name, protocol in (listeners or {}).items():
            self._ports[name] = free_port()
            self._protocols[name] = protocol
        self.controller_port = free_port()
        self._properties = dict(properties or {})
        self._scram_users = {mech: dict(users) for mech, users in (scram_users or {}).items()}
        self._system_properties = dict(system_properties or {})
        self._libs = libs
        self._cluster_id = new_cluster_id()
        self._process: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._archive_in_progress: Path | None = None

    # -- where it is ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The PLAINTEXT listener's port."""
        return self._ports["PLAINTEXT"]

    @property
    def bootstrap_servers(self) -> str:
        return f"{_LOOPBACK}:{self.port}"

    def port_of(self, listener: str) -> int:
        """The port of a listener named in `listeners` (or PLAINTEXT)."""
        return self._ports[listener]

    def bootstrap_of(self, listener: str) -> str:
        return f"{_LOOPBACK}:{self._ports[listener]}"

    @property
    def log_file(self) -> Path:
        """The broker's own log (log4j), for post-mortems of failed tests."""
        return self.directory / "server.log"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> Self:
        """Format the storage on first start, then run the broker until it reports started."""
        if self.running:
            raise RuntimeError(f"the Apache Kafka broker is already running (pid {self.pid})")
        libs = self._libs or find_kafka_libs()
        config = self._write_config()
        if not (self.data_dir / "meta.properties").is_file():
            self._format(libs, config)
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._stdout = (self.directory / "stdout.log").open("ab")
        self._process = subprocess.Popen(
            [_find_java(), *self._jvm_options(libs, for_server=True), "kafka.Kafka", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_started(log_offset, timeout)
            wait_for_port(self.port, timeout, self._process)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (controlled shutdown): SIGTERM, SIGKILL after `timeout` seconds."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            # a JVM writing the class-data archive at exit needs longer than a plain stop
            wait = timeout * 4 if self._archive_in_progress is not None else timeout
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                self.kill()  # an archive cut short by SIGKILL is dropped, not kept
                return
        self._keep_class_archive()
        self._close_stdout()

    def kill(self) -> None:
        """Crash the broker with SIGKILL (no controlled shutdown, no flush)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._drop_class_archive()
        self._close_stdout()

    def restart(self, timeout: float = 120.0) -> Self:
        """Stop gracefully and start again on the same ports and storage."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop, and remove the directory if this object created it."""
        self.stop()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _server_properties(self) -> dict[str, str]:
        client_listeners = ",".join(
            f"{name}://{_LOOPBACK}:{port}" for name, port in self._ports.items()
        )
        protocol_map = ",".join(
            [
                "CONTROLLER:PLAINTEXT",
                *(f"{name}:{proto}" for name, proto in self._protocols.items()),
            ]
        )
        return {
            "process.roles": "broker,controller",
            "node.id": str(_NODE_ID),
            "controller.quorum.voters": f"{_NODE_ID}@{_LOOPBACK}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"{client_listeners},CONTROLLER://{_LOOPBACK}:{self.controller_port}",
            "advertised.listeners": client_listeners,
            "listener.security.protocol.map": protocol_map,
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **TEST_PROPERTIES,
            **self._properties,
        }

    def _write_config(self) -> Path:
        config = self.directory / "server.properties"
        config.write_text(_properties_text(self._server_properties()))
        (self.directory / "log4j2.properties").write_text(_log4j_config(self.log_file))
        return config

    def _jvm_options(self, libs: Path, *, for_server: bool) -> list[str]:
        options = list(JVM_OPTIONS)
        archive = libs / _CLASS_ARCHIVE
        if archive.is_file():
            options.append(f"-XX:SharedArchiveFile={archive}")
        elif for_server and os.access(libs, os.W_OK):
            self._archive_in_progress = libs / f"{_CLASS_ARCHIVE}.{os.getpid()}.{self.port}"
            options.append(f"-XX:ArchiveClassesAtExit={self._archive_in_progress}")
        options.append(f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}")
        options.extend(f"-D{key}={value}" for key, value in self._system_properties.items())
        return [*options, "-cp", str(libs / "*")]

    def _format(self, libs: Path, config: Path) -> None:
        argv = [
            _find_java(),
            *self._jvm_options(libs, for_server=False),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self._cluster_id,
            "--config",
            str(config),
        ]
        for mechanism, users in self._scram_users.items():
            for name, password in users.items():
                argv += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise RuntimeError(f"formatting the Kafka storage failed ({done.returncode}): {output}")

    def _wait_started(self, log_offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the Apache Kafka broker exited with code {process.returncode} before "
                    f"it started; see {self.log_file} and {self.directory / 'stdout.log'}"
                )
            if self.log_file.exists():
                with self.log_file.open("rb") as log:
                    log.seek(log_offset)
                    if _STARTED_LINE in log.read():
                        return
            time.sleep(0.05)
        raise TimeoutError(
            f"the Apache Kafka broker did not start in {timeout}s; see {self.log_file}"
        )

    def _keep_class_archive(self) -> None:
        in_progress, self._archive_in_progress = self._archive_in_progress, None
        if in_progress is not None and in_progress.is_file():
            os.replace(in_progress, in_progress.parent / _CLASS_ARCHIVE)

    def _drop_class_archive(self) -> None:
        in_progress, self._archive_in_progress = self._archive_in_progress, None
        if in_progress is not None:
            in_progress.unlink(missing_ok=True)

    def _close_stdout(self) -> None:
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
