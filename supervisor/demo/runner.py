"""`kafka-pipeline demo`: the whole supervised pipeline on an embedded broker, live.

It starts an embedded Tansu broker, creates the topics, produces the sample stream of
`supervisor.demo.events` (poison, replays and one chaos event among ordinary events),
and runs the same `Pipeline` as `kafka-pipeline run`, with the demo's handler, until
Ctrl-C or `--duration`. A status line on stdout is refreshed twice a second (on a
terminal; every two seconds as plain lines otherwise), with a note above it when an
actor is restarted or a record is dead-lettered; a summary closes the run.

The pipeline's JSON logs go to `pipeline.log` in a fresh temporary directory (printed
at start), not to the terminal; the broker's output to `broker.log` beside it. The
directory is removed when the demo ends (the summary says how many log lines it held),
unless `--keep` asks to keep it (the summary then says where it is).

With `--duration`, production stops a little before the end so the pipeline can catch
up (it may take up to 5 s more for that), and the demo fails (exit 1) if a valid event
was not handled. After Ctrl-C, events
not handled yet are reported as such: they were not committed, so nothing is lost.

The broker is started with SIGINT blocked, so a Ctrl-C (sent by the terminal to the
whole process group) stops the pipeline gracefully while the broker stays up for its
final commit; the demo stops the broker itself at the end.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Final, TextIO

import anyio
import anyio.to_thread
from aiokafka import AIOKafkaProducer

from actors.log_shipper import FileSink
from supervisor.demo.events import (
    CHAOS_AT,
    POISON_EVERY,
    REPLAY_EVERY,
    DemoHandler,
    DemoLedger,
    event_stream,
)
from supervisor.demo.status import Notes, status_line, summary_lines
from supervisor.pipeline.config import (
    Config,
    DeadLetterConfig,
    HandlerConfig,
    HealthConfig,
    KafkaConfig,
    LoggingConfig,
    SupervisionConfig,
)
from supervisor.pipeline.process import EXIT_ESCALATED, EXIT_OK, serve
from supervisor.pipeline.wiring import Pipeline
from supervisor.testing import create_topics, read_topic
from supervisor.testing.embedded_broker import EmbeddedBroker, free_port

__all__ = ["DEAD_LETTER_TOPIC", "TOPIC", "run_demo"]

TOPIC: Final = "demo.events"
DEAD_LETTER_TOPIC: Final = "demo.events.dlq"
PARTITIONS: Final = 2
EVENTS_PER_SECOND: Final = 25.0
_LAST_PRODUCE_S: Final = 1.5
"""With --duration: stop producing this long before the end (at most half way)."""
_CATCH_UP_S: Final = 5.0
"""With --duration: how long past the end to wait for the pipeline to catch up."""


async def run_demo(duration: float | None, *, keep: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; the exit code (0: graceful stop and nothing lost). `keep` keeps the
    temporary directory with the logs; otherwise it is removed, whatever happened."""
    stream = out if out is not None else sys.stdout
    workdir = Path(tempfile.mkdtemp(prefix="kafka-pipeline-demo-"))
    try:
        broker = EmbeddedBroker(log_path=workdir / "broker.log")
        await anyio.to_thread.run_sync(_start_deaf_to_ctrl_c, broker)
        try:
            return await _Demo(broker.bootstrap_servers, workdir, stream, keep=keep).run(duration)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(broker.stop)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _start_deaf_to_ctrl_c(broker: EmbeddedBroker) -> None:
    """Start the broker with SIGINT blocked (the mask of this thread is inherited)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        broker.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _demo_config(bootstrap_servers: str, workdir: Path) -> Config:
    """The demo's configuration: the embedded broker, quick group joins, logs to a file."""
    return Config(
        kafka=KafkaConfig(
            bootstrap_servers=bootstrap_servers,
            topics=(TOPIC,),
            group_id="kafka-pipeline-demo",
            idempotent_producer=False,  # Tansu has no idempotent producer
            reset_beyond_log_end=True,  # Tansu answers no OffsetOutOfRange
            session_timeout_ms=2000,
            heartbeat_interval_ms=200,
        ),
        # Records of different keys run concurrently, as an I/O-bound handler would want.
        handler=HandlerConfig(ordering="key", max_in_flight=16),
        dead_letter=DeadLetterConfig(topic=DEAD_LETTER_TOPIC),
        supervisor=SupervisionConfig(graceful_stop_s=10.0),
        logging=LoggingConfig(file=workdir / "pipeline.log"),
        health=HealthConfig(port=free_port()),
    )


class _BelowTheStatus:
    """Where the process's own messages go: a line of their own, not the end of the status."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self._out = out
        self._erase = "\r\x1b[K" if tty else ""

    def write(self, text: str) -> None:
        self._out.write(self._erase + text)

    def flush(self) -> None:
        self._out.flush()


class _Demo:
    def __init__(self, bootstrap_servers: str, workdir: Path, out: TextIO, *, keep: bool) -> None:
        self._bootstrap = bootstrap_servers
        self._workdir = workdir
        self._keep = keep
        self._out = out
        self._tty = out.isatty()
        self._config = _demo_config(bootstrap_servers, workdir)
        self._log_file = workdir / "pipeline.log"
        self._ledger = DemoLedger()
        self._pipeline = Pipeline(
            self._config,
            handler=DemoHandler(self._ledger, attempts=self._config.retry.max_attempts),
            log_sinks=[FileSink(self._log_file)],
        )
        self._notes = Notes(DEAD_LETTER_TOPIC)
        self._started = anyio.current_time()
        self._producing = True

    async def run(self, duration: float | None) -> int:
        await create_topics(self._bootstrap, [TOPIC, DEAD_LETTER_TOPIC], partitions=PARTITIONS)
        self._print_header()
        async with anyio.create_task_group() as group:
            group.start_soon(self._produce)
            group.start_soon(self._show_status)
            if duration is not None:
                group.start_soon(self._finish_after, duration)
            code = await serve(self._pipeline, stderr=_BelowTheStatus(self._out, self._tty))
            group.cancel_scope.cancel()
        return await self._summarise(code, drained=duration is not None)

    def _print_header(self) -> None:
        root = self._pipeline.root
        port = self._config.health.port
        self._say(
            "kafka-pipeline demo",
            f"  broker      embedded Tansu on {self._bootstrap}",
            f"  topics      {TOPIC} ({PARTITIONS} partitions), dead letters to {DEAD_LETTER_TOPIC}",
            f"  stream      ~{EVENTS_PER_SECOND:g} JSON events/s with trace_id headers; every"
            f" {POISON_EVERY}th is poison (not JSON), every {REPLAY_EVERY}th a replay,"
            f" #{CHAOS_AT} a chaos event that crashes the consumer once",
            f"  supervisor  '{root.name}' (one_for_one): "
            + ", ".join(spec.name for spec in root.children),
            f"  endpoints   http://127.0.0.1:{port}/metrics  /readyz  /healthz",
            f"  logs        {self._log_file} (JSON lines; broker output in broker.log);"
            + (" kept" if self._keep else " removed at the end (--keep keeps them)"),
            "  stop        Ctrl-C (or --duration SECONDS)",
            "",
        )

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            interval = 1.0 / EVENTS_PER_SECOND
            for event in event_stream():
                if not self._producing:
                    return
                await producer.send_and_wait(
                    TOPIC, event.value, key=event.key, headers=event.headers
                )
                self._ledger.record_produced(event)
                await anyio.sleep(interval)
        finally:
            with anyio.CancelScope(shield=True):
                await producer.stop()

    async def _finish_after(self, duration: float) -> None:
        """Produce until shortly before the end, let the pipeline catch up, then stop it."""
        await anyio.sleep(max(duration - _LAST_PRODUCE_S, duration / 2))
        self._producing = False
        with anyio.move_on_at(self._started + duration + _CATCH_UP_S):
            while not self._caught_up():  # noqa: ASYNC110 (counters of two owners: poll them)
                await anyio.sleep(0.1)
        await anyio.sleep_until(self._started + duration)
        self._pipeline.stop()

    def _caught_up(self) -> bool:
        consumer = self._pipeline.consumer_state.stats
        return not self._ledger.missing() and consumer.dead_lettered >= self._ledger.poison

    async def _show_status(self) -> None:
        interval = 0.5 if self._tty else 2.0
        while True:
            await anyio.sleep(interval)
            self._show_line()

    def _show_line(self) -> None:
        observation = self._pipeline.observe()
        erase = "\r\x1b[K" if self._tty else ""
        for note in self._notes.update(observation):
            self._out.write(f"{erase}{note}\n")
        line = status_line(observation, self._ledger, anyio.current_time() - self._started)
        self._out.write(f"{erase}{line}" if self._tty else f"{line}\n")
        self._out.flush()

    async def _summarise(self, code: int, *, drained: bool) -> int:
        self._show_line()
        if self._tty:
            self._say("")
        observation = self._pipeline.observe()
        stored = await read_topic(
            self._bootstrap,
            DEAD_LETTER_TOPIC,
            expected=observation.consumer.dead_lettered,
            max_wait=5.0,
        )
        self._say(
            *summary_lines(
                observation,
                self._ledger,
                dead_letter_topic=DEAD_LETTER_TOPIC,
                dead_letter_records=len(stored),
                logs=self._logs_note(),
            )
        )
        if code == EXIT_OK and drained and self._ledger.missing():
            self._say("kafka-pipeline demo: valid events were not handled: that is a bug")
            return EXIT_ESCALATED
        return code

    def _logs_note(self) -> str:
        if self._keep:
            return f"{self._log_file} (kept)"
        try:
            with self._log_file.open("rb") as log:
                count = sum(1 for _ in log)
        except OSError:
            count = 0
        return f"{count} lines, removed with {self._workdir} (--keep keeps them)"

    def _say(self, *lines: str) -> None:
        for line in lines:
            self._out.write(f"{line}\n")
        self._out.flush()
