"""Soak benchmark: a million records through `kafka-pipeline run`, its memory sampled.

    .venv/bin/python scripts/soak.py [--records N] [--value-bytes B] [--handler noop|jsonl]
                                     [--write]

Starts an embedded broker (memory storage), produces N records of B bytes (each with a
unique `trace_id` header, so the dedup window fills to its capacity) while the process
consumes them, and samples the process's resident memory (VmRSS from /proc/PID/status;
psutil is not a dependency) once a second. Prints the figures as JSON; `--write`
also puts them into the soak section of docs/RELIABILITY.md (between the markers the
reliability suite keeps when it rewrites the rest of that file).

The default handler does nothing (the figures are the process's own memory, not a
sink's); `--handler jsonl` uses the built-in `jsonl:` sink, which fsyncs every line
and so runs at the disk's pace. Not part of CI: it takes minutes, and the broker's own
memory grows with every record (Tansu never frees it), which is why values are small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from supervisor.testing import committed_offsets, create_topics
from supervisor.testing.embedded_broker import EmbeddedBroker, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "RELIABILITY.md"
SOAK_BEGIN = "<!-- soak:begin -->"
SOAK_END = "<!-- soak:end -->"
"""The markers tests/reliability/reliability_report.py keeps when it rewrites the report."""

TOPIC = "soak"
GROUP = "soak-group"
PARTITIONS = 4
PRODUCE_CHUNK = 5_000
NOOP_HANDLER = '''
"""Does nothing: the soak measures the process, not a sink."""


async def handle(record):
    return None
'''


@dataclass
class Samples:
    """RSS samples of the process: (seconds since start, records handled, MiB)."""

    points: list[tuple[float, int, float]] = field(default_factory=list)

    def at_handled(self, fraction: float, total: int) -> float:
        """The first sample taken once `fraction` of `total` records were handled."""
        for _, handled, rss in self.points:
            if handled >= fraction * total:
                return rss
        return self.points[-1][2]


@dataclass
class SoakResult:
    records: int
    value_bytes: int
    handler: str
    seconds: float
    """From the start of producing (the process was listening) to the last record handled."""
    records_per_second: float
    handled_metric: int
    committed: int
    lost: int
    rss_start_mib: float
    rss_end_mib: float
    rss_growth_mib: float
    rss_max_mib: float
    rss_at_10_50_90_percent_mib: tuple[float, float, float]
    broker_rss_end_mib: float
    machine: str


def rss_mib(pid: int) -> float:
    """VmRSS of `pid` in MiB (0 once the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def handled_metric(port: int) -> int:
    """`kafka_pipeline_records_handled_total` from the process's /metrics (-1 if unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1
    for line in text.splitlines():
        if line.startswith("kafka_pipeline_records_handled_total "):
            return int(float(line.split()[1]))
    return -1


def value_of(n: int, size: int) -> bytes:
    """A JSON value of exactly `size` bytes (at least the id) for record `n`."""
    head = f'{{"id": "soak-{n}", "pad": "'
    return (head + "x" * max(0, size - len(head) - 2) + '"}').encode()


async def produce_all(bootstrap: str, records: int, size: int) -> None:
    """Produce `records` records in acknowledged chunks."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        for start in range(0, records, PRODUCE_CHUNK):
            futures = []
            for n in range(start, min(records, start + PRODUCE_CHUNK)):
                trace_id = f"soak-{n}".encode()
                futures.append(
                    await producer.send(
                        TOPIC, value_of(n, size), key=trace_id, headers=[("trace_id", trace_id)]
                    )
                )
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


def start_process(workdir: Path, config: Path) -> subprocess.Popen[bytes]:
    """`python -m supervisor run` in a process group of its own, output to process.log."""
    env = {**os.environ, "PYTHONPATH": str(workdir)}
    with (workdir / "process.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "--config", str(config)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def write_config(workdir: Path, bootstrap: str, handler: str, port: int) -> Path:
    target = "kp_soak_handler:handle" if handler == "noop" else "jsonl:handled.jsonl"
    (workdir / "kp_soak_handler.py").write_text(NOOP_HANDLER)
    config = workdir / "pipeline.toml"
    config.write_text(
        f"""[kafka]
bootstrap_servers = "{bootstrap}"
topics = ["{TOPIC}"]
group_id = "{GROUP}"
idempotent_producer = false  # the embedded Tansu cannot start an idempotent producer
reset_beyond_log_end = true  # nor answer OffsetOutOfRange
[handler]
target = "{target}"
[health]
port = {port}
"""
    )
    return config


async def soak(records: int, size: int, handler: str, workdir: Path) -> SoakResult:
    broker = EmbeddedBroker(log_path=workdir / "tansu.log").start()
    port = free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        await create_topics(broker.bootstrap_servers, [TOPIC, f"{TOPIC}.dlq"], PARTITIONS)
        config = write_config(workdir, broker.bootstrap_servers, handler, port)
        process = start_process(workdir, config)
        wait_for_port(port, 30, process)
        started = time.monotonic()
        producing = asyncio.create_task(produce_all(broker.bootstrap_servers, records, size))
        samples = Samples()
        handled = 0
        while handled < records:
            await asyncio.sleep(1)
            if producing.done() and producing.exception() is not None:
                raise RuntimeError("producing failed") from producing.exception()
            if process.poll() is not None:
                raise RuntimeError(f"the process exited with {process.returncode}")
            handled = max(handled, handled_metric(port))
            elapsed, rss = time.monotonic() - started, rss_mib(process.pid)
            samples.points.append((elapsed, handled, rss))
            print(f"{elapsed:7.1f}s handled {handled:>9} rss {rss:7.1f} MiB", file=sys.stderr)
        seconds = time.monotonic() - started
        await producing
        await asyncio.sleep(2)  # one more commit interval
        rss_end = rss_mib(process.pid)
        broker_rss = rss_mib(broker.pid) if broker.pid is not None else 0.0
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        offsets = await committed_offsets(broker.bootstrap_servers, GROUP, TOPIC, PARTITIONS)
        committed = sum(offset or 0 for offset in offsets.values())
        warm = [rss for _, done, rss in samples.points if done > 0]
        rss_start = warm[0] if warm else samples.points[0][2]
        return SoakResult(
            records=records,
            value_bytes=size,
            handler=handler,
            seconds=round(seconds, 1),
            records_per_second=round(records / seconds),
            handled_metric=handled,
            committed=committed,
            lost=records - committed,
            rss_start_mib=round(rss_start, 1),
            rss_end_mib=round(rss_end, 1),
            rss_growth_mib=round(rss_end - rss_start, 1),
            rss_max_mib=round(max(rss for _, _, rss in samples.points), 1),
            rss_at_10_50_90_percent_mib=(
                round(samples.at_handled(0.1, records), 1),
                round(samples.at_handled(0.5, records), 1),
                round(samples.at_handled(0.9, records), 1),
            ),
            broker_rss_end_mib=round(broker_rss, 1),
            machine=f"{os.cpu_count()} cores, Python {platform.python_version()}",
        )
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        broker.stop()


def render(result: SoakResult) -> str:
    """The soak section of docs/RELIABILITY.md, markers included."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in asdict(result).items())
    return (
        f"{SOAK_BEGIN}\n"
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `scripts/soak.py`: "
        f"{result.records:,} records of {result.value_bytes} bytes through "
        "`kafka-pipeline run` (dedup on, capacity 100,000 trace ids), RSS of the process "
        "sampled once a second. `rss_start_mib` is the first sample after the first "
        "record was handled; the growth is mostly the dedup window filling up to its "
        "capacity, after which it stays flat.\n\n"
        "| figure | value |\n|---|---|\n"
        f"{rows}\n"
        f"{SOAK_END}"
    )


def write_report(section: str) -> None:
    """Replace the soak section of docs/RELIABILITY.md (or append one)."""
    text = REPORT.read_text() if REPORT.exists() else "# Reliability figures\n\n## Soak\n\n"
    if SOAK_BEGIN in text and SOAK_END in text:
        start, end = text.index(SOAK_BEGIN), text.index(SOAK_END) + len(SOAK_END)
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--handler", choices=("noop", "jsonl"), default="noop")
    parser.add_argument("--write", action="store_true", help="update docs/RELIABILITY.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kp-soak-") as workdir:
        result = asyncio.run(soak(args.records, args.value_bytes, args.handler, Path(workdir)))
    print(json.dumps(asdict(result), indent=2))
    if args.write:
        write_report(render(result))
        print(f"written to {REPORT}", file=sys.stderr)
    return 0 if result.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
