"""The process under test as a user runs it: its config file, the subprocess, what it wrote.

Every scenario of the reliability suite drives `python -m supervisor run --config FILE`
in a process group of its own (so a `kill -9` takes the whole process and nothing the
test did not start), produces records whose id is both the `trace_id` header and the
`id` field of the JSON value, and judges the run by the `jsonl:` sink: one JSON line per
handled record, with its topic, partition, offset and headers.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import orjson
from aiokafka import AIOKafkaProducer

from supervisor.testing.embedded_broker import free_port

__all__ = [
    "CLEAN_ENV",
    "PipelineProcess",
    "RetryingProducer",
    "Sink",
    "http_get",
    "key_order_violations",
    "log_events",
    "numbered_record",
    "partition_counts",
    "pipeline_sections",
    "ready_partitions",
    "trace_id_of",
    "until",
    "with_keys",
    "workload",
    "write_config",
]

CLEAN_ENV: dict[str, str] = {
    name: value
    for name, value in os.environ.items()
    if not name.startswith(("KAFKA_PIPELINE_", "AZURE_"))
}
"""The test's environment less anything that would configure the process behind its back."""

Sections = Mapping[str, Mapping[str, object]]
ProducedRecord = tuple[bytes, bytes, list[tuple[str, bytes]]]


# -- configuration ---------------------------------------------------------------------------


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return orjson.dumps(str(value)).decode()  # a JSON string is a valid TOML basic string


def write_config(path: Path, sections: Sections) -> Path:
    """Write `sections` ({table: {key: value}}) as a TOML file at `path`."""
    lines: list[str] = []
    for table, values in sections.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def pipeline_sections(
    bootstrap: str, topic: str, group: str, overrides: Sections | None = None
) -> dict[str, dict[str, object]]:
    """The suite's baseline: short group timeouts, frequent commits, quick restarts, a
    jsonl sink `handled.jsonl`, the health endpoint on a free port; `overrides` win."""
    sections: dict[str, dict[str, object]] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [topic],
            "group_id": group,
            "session_timeout_ms": 2000,
            "heartbeat_interval_ms": 200,
            "commit_interval_s": 0.2,
        },
        "handler": {"target": "jsonl:handled.jsonl"},
        "supervisor": {"backoff_base_s": 0.05, "backoff_max_s": 0.5, "graceful_stop_s": 10},
        "health": {"port": free_port()},
    }
    for table, values in (overrides or {}).items():
        sections.setdefault(table, {}).update(values)
    return sections


# -- records ---------------------------------------------------------------------------------


def numbered_record(prefix: str, n: int, *, keys: int | None = None) -> ProducedRecord:
    """Record `n` of a workload: its id `prefix-n` is the trace_id header, the value's `id`
    and its key; with `keys`, the key is `key-(n mod keys)` instead, so that the records
    of one key follow each other (in one partition) and their order can be checked."""
    record_id = f"{prefix}-{n}"
    key = record_id if keys is None else f"key-{n % keys}"
    value = orjson.dumps({"id": record_id, "n": n})
    return key.encode(), value, [("trace_id", record_id.encode())]


def workload(prefix: str, count: int, *, keys: int | None = None) -> list[ProducedRecord]:
    """Records 0 to `count - 1` of the workload `prefix` (`keys` as in numbered_record)."""
    return [numbered_record(prefix, n, keys=keys) for n in range(count)]


def with_keys(records: Iterable[ProducedRecord], keys: int) -> list[ProducedRecord]:
    """The same records, the i-th with the key `key-(i mod keys)`."""
    return [
        (f"key-{i % keys}".encode(), value, headers)
        for i, (_, value, headers) in enumerate(records)
    ]


def trace_id_of(entry: Mapping[str, Any]) -> str | None:
    """The trace_id header of a record as the jsonl sink wrote it."""
    for name, value in entry["headers"]:
        if name == "trace_id":
            return str(value)
    return None


@dataclass(frozen=True)
class Sink:
    """The `jsonl:` file a process appends one line per handled record to."""

    path: Path

    def entries(self) -> list[dict[str, Any]]:
        """Every line so far (a process that was killed leaves only whole lines: the
        handler writes each line with one write and fsyncs it before returning)."""
        if not self.path.exists():
            return []
        return [orjson.loads(line) for line in self.path.read_bytes().splitlines()]

    def count(self) -> int:
        """How many lines so far."""
        if not self.path.exists():
            return 0
        return self.path.read_bytes().count(b"\n")

    def has_more_than(self, lines: int) -> bool:
        """True once the file holds more than `lines` lines."""
        return self.count() > lines

    def ids(self) -> list[str]:
        """The trace ids of the handled records, in the order handled (repeats kept)."""
        return [str(trace_id_of(entry)) for entry in self.entries()]


async def produce_until(
    stop: anyio.Event,
    producer: RetryingProducer,
    topic: str,
    produced: list[str],
    *,
    prefix: str,
    pause_s: float,
    keys: int | None = None,
) -> None:
    """Send `PREFIX-N` records one by one, each acknowledged, `pause_s` apart, until `stop`
    (`keys` as in numbered_record).

    `produced` collects their ids in order, for the caller's nothing-lost check.
    """
    for n in itertools.count():
        if stop.is_set():
            return
        record = numbered_record(prefix, n, keys=keys)
        await producer.send(topic, record)
        produced.append(f"{prefix}-{n}")
        await anyio.sleep(pause_s)


class RetryingProducer:
    """Produces records one by one, each retried until the broker acknowledged it.

    What a well-behaved upstream does through a broker outage: a send that failed or
    timed out is sent again (so a record may land twice; its id says it is the same).
    """

    def __init__(self, bootstrap: str, *, attempt_timeout: float = 2.0) -> None:
        self._bootstrap = bootstrap
        self._attempt_timeout = attempt_timeout
        self._producer: AIOKafkaProducer | None = None
        self.retries = 0

    async def send(self, topic: str, record: ProducedRecord) -> None:
        """Send `record` and return once it was acknowledged (acks=all)."""
        key, value, headers = record
        while True:
            try:
                with anyio.fail_after(self._attempt_timeout):
                    producer = await self._started()
                    await producer.send_and_wait(topic, value, key=key, headers=headers)
                return
            except Exception:
                self.retries += 1
                await self._discard()
                await anyio.sleep(0.2)

    async def aclose(self) -> None:
        """Stop the producer."""
        await self._discard()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                acks="all",
                request_timeout_ms=int(self._attempt_timeout * 1000),
            )
            self._producer = producer
            await producer.start()
        return self._producer

    async def _discard(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with anyio.move_on_after(2, shield=True):
                try:
                    await producer.stop()
                except Exception as exc:  # a producer cut off by the outage: drop it
                    print(f"discarding a broken producer: {exc!r}", file=sys.stderr)


# -- the process -----------------------------------------------------------------------------


class PipelineProcess:
    """`python -m supervisor run --config FILE` in `workdir`, in a process group of its own.

    Each start is a new *life*; its stdout and stderr go to `<name>-<life>.stdout` and
    `.stderr` in `workdir`, so nothing a life wrote is overwritten by the next.
    """

    def __init__(
        self,
        workdir: Path,
        config: Path,
        *,
        env: Mapping[str, str] | None = None,
        name: str = "pipeline",
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.env = {**CLEAN_ENV, **(env or {})}
        self.name = name
        self.lives = 0
        self._popen: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []

    @property
    def pid(self) -> int:
        assert self._popen is not None, "not started"
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self) -> PipelineProcess:
        """Start a new life of the process (the previous one must have ended)."""
        assert not self.running, f"{self.name} is still running"
        self.lives += 1
        stdout = self._log_path("stdout").open("wb")
        stderr = self._log_path("stderr").open("wb")
        self._files += [stdout, stderr]
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "--config", str(self.config)],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """`kill -9` the process group of the current life, and reap it."""
        if self.running:
            os.killpg(self.pid, signal.SIGKILL)
        if self._popen is not None:
            self._popen.wait()

    def signal(self, signum: int) -> None:
        """Send `signum` to the process (not its group: as an orchestrator does)."""
        assert self._popen is not None, "not started"
        self._popen.send_signal(signum)

    async def exit_code(self, within: float) -> int:
        """Wait for the current life to end; fails the test if it takes longer."""
        assert self._popen is not None, "not started"
        popen = self._popen
        try:
            code: int = await anyio.to_thread.run_sync(popen.wait, within)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {within}s") from None
        return code

    def stdout(self, life: int | None = None) -> str:
        """What a life (default: the current one) wrote to stdout."""
        return self._log_path("stdout", life).read_text(errors="replace")

    def stderr(self, life: int | None = None) -> str:
        """What a life (default: the current one) wrote to stderr."""
        return self._log_path("stderr", life).read_text(errors="replace")

    def output_files(self) -> list[Path]:
        """Every stdout and stderr file of every life."""
        return [
            self._log_path(stream, life)
            for life in range(1, self.lives + 1)
            for stream in ("stdout", "stderr")
        ]

    def close(self) -> None:
        """Kill the process group if it still runs; close the output files."""
        self.kill()
        for file in self._files:
            file.close()
        self._files.clear()

    def _log_path(self, stream: str, life: int | None = None) -> Path:
        return self.workdir / f"{self.name}-{life or self.lives}.{stream}"


def log_events(text: str) -> list[dict[str, Any]]:
    """The JSON log records in a process's output (lines that are not JSON are skipped)."""
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            events.append(orjson.loads(line))
    return events


# -- waiting and probing ---------------------------------------------------------------------


async def until(
    check: Callable[[], bool | Awaitable[bool]],
    within: float,
    what: str,
    *,
    alive: PipelineProcess | None = None,
) -> float:
    """Poll `check` every 50 ms until it holds; the seconds it took. Fails naming `what`
    after `within` seconds, or at once if the process `alive` names has exited."""
    started = time.monotonic()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if alive is not None and not alive.running:
            tail = alive.stderr().strip().splitlines()[-3:]
            raise AssertionError(f"{alive.name} exited while waiting for: {what}; stderr: {tail}")
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s: {what}")
        await anyio.sleep(0.05)


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """(status, body) of GET http://127.0.0.1:port/path; (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


async def ready_partitions(port: int) -> set[int] | None:
    """The partitions /readyz says this process consumes; None when it is not ready."""
    status, body = await anyio.to_thread.run_sync(http_get, port, "/readyz")
    if status != 200:
        return None
    assigned = body.decode().splitlines()[1].removeprefix("assigned: ")
    return {int(item.rsplit("[", 1)[1].rstrip("]")) for item in assigned.split(", ")}


def key_order_violations(entries: Iterable[Mapping[str, Any]]) -> int:
    """How many of one life's handled records (in the order handled, each with its
    `partition`, `offset` and `key`) came at or before an offset already handled for the
    same key; records without a key count as one key per partition. 0 when every key's
    records were handled in offset order without repeats."""
    last_offset: dict[tuple[int, str | None], int] = {}
    violations = 0
    for entry in entries:
        key = None if entry["key"] is None else str(entry["key"])
        lane = (entry["partition"], key)
        violations += entry["offset"] <= last_offset.get(lane, -1)
        last_offset[lane] = entry["offset"]
    return violations


def partition_counts(entries: Iterable[Mapping[str, Any]]) -> dict[int, int]:
    """How many sink entries each partition has."""
    counts: dict[int, int] = {}
    for entry in entries:
        counts[entry["partition"]] = counts.get(entry["partition"], 0) + 1
    return counts
