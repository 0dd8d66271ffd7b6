"""`kafka-pipeline run` as a process against the real broker: signals, exit codes, no loss."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import orjson
import pytest

from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name
from supervisor.testing.embedded_broker import free_port

pytestmark = pytest.mark.anyio

CLEAN_ENV = {
    name: value for name, value in os.environ.items() if not name.startswith("KAFKA_PIPELINE_")
}
"""The test run's environment without overrides (every KAFKA_PIPELINE_ variable is one)."""

RECORDS = 200
PARTITIONS = 2


class Process:
    """`python -m supervisor run` in `workdir`, its stdout and stderr kept in files there."""

    def __init__(self, workdir: Path, config: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self._stdout = (workdir / "stdout.log").open("wb")
        self._stderr = (workdir / "stderr.log").open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "--config", str(config)],
            cwd=workdir,
            env={**CLEAN_ENV, **(env or {})},
            stdout=self._stdout,
            stderr=self._stderr,
        )

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr.log").read_text()

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    async def exit_code(self, within: float) -> int:
        """Wait for the exit; the test fails if it takes longer than `within` seconds."""
        code: int = await anyio.to_thread.run_sync(self.popen.wait, within)
        return code

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._stdout.close()
        self._stderr.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes started by a test; killed at the end if still running."""
    started: list[Process] = []
    yield started
    for process in started:
        process.close()


async def _until(check: Callable[[], bool]) -> None:
    """Poll `check()` every 50 ms until true (bound it with anyio.fail_after)."""
    while True:
        if check():
            return
        await anyio.sleep(0.05)


async def _topic_with_records(bootstrap: str, count: int) -> str:
    topic = unique_name("proc")
    await create_topics(bootstrap, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    await produce(
        bootstrap,
        topic,
        [(b"k%d" % i, b'{"n": %d}' % i, [("trace_id", b"t%d" % i)]) for i in range(count)],
    )
    return topic


def _config(path: Path, bootstrap: str, topic: str, group: str, extra: str = "") -> Path:
    path.write_text(
        textwrap.dedent(
            f"""
            [kafka]
            bootstrap_servers = "{bootstrap}"
            topics = ["{topic}"]
            group_id = "{group}"
            session_timeout_ms = 2000
            heartbeat_interval_ms = 200
            [health]
            port = {free_port()}
            """
        )
        + textwrap.dedent(extra)
    )
    return path


def _user_module(workdir: Path, name: str, body: str) -> dict[str, str]:
    """Write a handler module into `workdir`; the environment that puts it on PYTHONPATH."""
    (workdir / f"{name}.py").write_text(textwrap.dedent(body))
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir), os.environ.get("PYTHONPATH")]))
    }


async def test_sigterm_stops_gracefully_after_every_record_was_handled_and_committed(
    bootstrap_servers: str, tmp_path: Path, processes: list[Process]
) -> None:
    """Exit 0 within the deadline; the jsonl file holds every record once; all is committed."""
    topic, group = await _topic_with_records(bootstrap_servers, RECORDS), unique_name("proc-g")
    config = _config(
        tmp_path / "pipeline.toml",
        bootstrap_servers,
        topic,
        group,
        """
        [handler]
        target = "jsonl:handled.jsonl"
        [supervisor]
        graceful_stop_s = 10
        """,
    )
    output = tmp_path / "handled.jsonl"
    process = Process(tmp_path, config)
    processes.append(process)
    with anyio.fail_after(30):
        await _until(lambda: output.exists() and len(output.read_bytes().splitlines()) >= RECORDS)
    process.signal(signal.SIGTERM)
    started = time.monotonic()
    assert await process.exit_code(within=15) == 0
    assert time.monotonic() - started < 10
    assert process.stderr == "kafka-pipeline: SIGTERM: stopping gracefully\n"
    handled = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    assert sorted(r["value"] for r in handled) == sorted(f'{{"n": {i}}}' for i in range(RECORDS))
    offsets = await committed_offsets(bootstrap_servers, group, topic, PARTITIONS)
    per_partition = {p: sum(1 for r in handled if r["partition"] == p) for p in range(PARTITIONS)}
    assert offsets == per_partition
    logs = [orjson.loads(line) for line in (tmp_path / "stdout.log").read_bytes().splitlines()]
    assert {"event": "child_stopped", "child": "log_shipper"}.items() <= logs[-1].items()


async def test_sigusr1_and_sigusr2_are_ignored_and_sighup_stops_gracefully(
    bootstrap_servers: str, tmp_path: Path, processes: list[Process]
) -> None:
    """USR1/USR2 leave the process running (a line each); HUP stops it like TERM, all committed."""
    topic, group = await _topic_with_records(bootstrap_servers, RECORDS), unique_name("proc-g")
    config = _config(
        tmp_path / "pipeline.toml",
        bootstrap_servers,
        topic,
        group,
        """
        [handler]
        target = "jsonl:handled.jsonl"
        """,
    )
    output = tmp_path / "handled.jsonl"
    process = Process(tmp_path, config)
    processes.append(process)
    with anyio.fail_after(30):
        await _until(lambda: output.exists() and len(output.read_bytes().splitlines()) >= RECORDS)
    for signum in (signal.SIGUSR1, signal.SIGUSR2):
        process.signal(signum)
    with anyio.fail_after(10):
        await _until(lambda: process.stderr.count("ignored") == 2)
    assert process.popen.poll() is None, "an ignored signal must not end the process"
    process.signal(signal.SIGHUP)
    assert await process.exit_code(within=15) == 0
    *ignored, stopping = process.stderr.splitlines()
    assert sorted(ignored) == [  # two pending signals may be delivered in either order
        "kafka-pipeline: SIGUSR1: ignored (SIGTERM, SIGINT or SIGHUP stop the process)",
        "kafka-pipeline: SIGUSR2: ignored (SIGTERM, SIGINT or SIGHUP stop the process)",
    ]
    assert stopping == "kafka-pipeline: SIGHUP: stopping gracefully"
    offsets = await committed_offsets(bootstrap_servers, group, topic, PARTITIONS)
    assert sum(offsets.values()) == RECORDS


async def test_a_poison_storm_escalates_and_exits_1_naming_actor_category_and_cause(
    bootstrap_servers: str, tmp_path: Path, processes: list[Process]
) -> None:
    """A handler that rejects every record dead-letters a window of them, then exits 1."""
    topic, group = await _topic_with_records(bootstrap_servers, 40), unique_name("proc-g")
    env = _user_module(
        tmp_path,
        "kp_rejecting_handler",
        """
        def handle(record):
            raise ValueError(f"cannot parse record {record.offset}")
        """,
    )
    config = _config(
        tmp_path / "pipeline.toml",
        bootstrap_servers,
        topic,
        group,
        """
        [handler]
        target = "kp_rejecting_handler:handle"
        [dead_letter]
        poison_window = 10
        """,
    )
    process = Process(tmp_path, config, env)
    processes.append(process)
    assert await process.exit_code(within=30) == 1
    [line] = process.stderr.splitlines()
    assert re.fullmatch(
        r"kafka-pipeline: actor 'kafka_consumer' escalated \(permanent\): "
        r"poison storm: (\d+) of last \1 records dead-lettered",
        line,
    ), line
    dead_letters = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=10, max_wait=5)
    assert len(dead_letters) >= 10
    for record in dead_letters:
        headers = dict(record.headers)
        assert headers["dlq.error.class"] == b"builtins.ValueError"
        assert headers["dlq.error.category"] == b"permanent"


SLOW_HANDLER = """
import pathlib, time

def handle(record):
    pathlib.Path("in-handler").touch()
    time.sleep(60)
"""


async def test_a_second_signal_stops_at_once(
    bootstrap_servers: str, tmp_path: Path, processes: list[Process]
) -> None:
    """While a handler call holds up the graceful stop, a second SIGTERM exits 143 at once."""
    topic, group = await _topic_with_records(bootstrap_servers, 5), unique_name("proc-g")
    env = _user_module(tmp_path, "kp_slow_handler", SLOW_HANDLER)
    config = _config(
        tmp_path / "pipeline.toml",
        bootstrap_servers,
        topic,
        group,
        '[handler]\ntarget = "kp_slow_handler:handle"\n[supervisor]\ngraceful_stop_s = 60\n',
    )
    process = Process(tmp_path, config, env)
    processes.append(process)
    with anyio.fail_after(30):
        await _until((tmp_path / "in-handler").exists)
    process.signal(signal.SIGTERM)
    with anyio.fail_after(5):
        await _until(lambda: "stopping gracefully" in process.stderr)
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=5) == 128 + signal.SIGTERM
    assert process.stderr.splitlines()[-1] == (
        "kafka-pipeline: SIGTERM again: stopping at once; "
        "records not yet committed will be delivered again"
    )
    assert await committed_offsets(bootstrap_servers, group, topic, PARTITIONS) == {
        0: None,
        1: None,
    }


async def test_a_graceful_stop_that_overruns_its_deadline_ends_at_the_deadline(
    bootstrap_servers: str, tmp_path: Path, processes: list[Process]
) -> None:
    """A handler call longer than supervisor.graceful_stop_s cannot keep the process: exit 1."""
    topic, group = await _topic_with_records(bootstrap_servers, 5), unique_name("proc-g")
    env = _user_module(tmp_path, "kp_slow_handler", SLOW_HANDLER)
    config = _config(
        tmp_path / "pipeline.toml",
        bootstrap_servers,
        topic,
        group,
        '[handler]\ntarget = "kp_slow_handler:handle"\n[supervisor]\ngraceful_stop_s = 2\n',
    )
    process = Process(tmp_path, config, env)
    processes.append(process)
    with anyio.fail_after(30):
        await _until((tmp_path / "in-handler").exists)
    process.signal(signal.SIGTERM)
    started = time.monotonic()
    assert await process.exit_code(within=10) == 1
    assert 2 <= time.monotonic() - started < 5
    assert "graceful stop took longer than 2s: stopping at once" in process.stderr
