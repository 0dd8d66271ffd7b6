"""Scenario 3: crash storms. An injected handler fails with one error category at a high rate.

The handler is the process's injection point (the actor tree is fixed by the wiring):
its failures reach the supervisor through the consumer, as the error taxonomy says.

- TRANSIENT and UNKNOWN (90% of calls, one attempt each, the breaker's threshold set out
  of reach so failures crash instead of pausing): the consumer is restarted exactly
  `supervisor.max_restarts` times, then the process escalates: exit 1 and one line
  naming the actor, the category and the cause.
- PERMANENT with dead-lettering off: escalates at once, no restart.
- CIRCUIT_OPEN (the first call for every record is refused): the consumer pauses and
  resumes by itself, nothing restarts, every record is handled, SIGTERM exits 0.
- AUTH: a token refresh comes before the restart. This one runs the process's own
  wiring (`supervisor.pipeline.wiring.Pipeline`, real supervisor, real token refresher reading a
  real token file) in process, with only the consumer's connection switched to
  PLAINTEXT; the same path with a broker that refuses the token over OAUTHBEARER is
  tests/sasl/test_sasl_pipeline_auth.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from reliability_harness import (
    PipelineProcess,
    Sink,
    log_events,
    pipeline_sections,
    until,
    workload,
    write_config,
)
from reliability_report import ReliabilityReport

from actors.log_shipper import FileSink
from actors.messages import Record
from core.errors import AuthError
from supervisor.pipeline.config import parse_config
from supervisor.pipeline.wiring import KAFKA_CONSUMER, Pipeline
from supervisor.testing import create_topics, produce, unique_name

pytestmark = pytest.mark.anyio

RECORDS = 20
MAX_RESTARTS = 3

STORM_HANDLER = '''
"""Fails with the category KP_STORM_CATEGORY names, at the rate KP_STORM_RATE."""
import os
import random
from pathlib import Path

from actors.sinks import JsonLinesHandler
from core.errors import CircuitOpenError, PermanentError, TransientError

CATEGORY = os.environ["KP_STORM_CATEGORY"]
RATE = float(os.environ["KP_STORM_RATE"])
_sink = JsonLinesHandler(Path("handled.jsonl"))
_refused = set()


def _failure(where):
    if CATEGORY == "transient":
        return TransientError(f"downstream unavailable for {where}")
    if CATEGORY == "unknown":
        return RuntimeError(f"unexpected state at {where}")
    return PermanentError(f"cannot process {where}")


async def handle(record):
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    if CATEGORY == "circuit_open":
        if where not in _refused:
            _refused.add(where)
            raise CircuitOpenError("downstream", retry_after=0.05)
    elif random.random() < RATE:
        raise _failure(where)
    _sink(record)


handle.before_commit = _sink.before_commit  # fsync once per commit
'''


def _storm(
    tmp_path: Path,
    bootstrap: str,
    topic: str,
    category: str,
    rate: float,
    extra: dict[str, dict[str, object]],
) -> PipelineProcess:
    (tmp_path / "kp_storm_handler.py").write_text(STORM_HANDLER)
    overrides: dict[str, dict[str, object]] = {
        "handler": {"target": "kp_storm_handler:handle"},
        "retry": {"max_attempts": 1},
        "breaker": {"failure_threshold": 1000},
        "supervisor": {"max_restarts": MAX_RESTARTS, "period_s": 60},
    }
    for table, values in extra.items():
        overrides.setdefault(table, {}).update(values)
    sections = pipeline_sections(bootstrap, topic, unique_name("storm-g"), overrides)
    env = {
        "KP_STORM_CATEGORY": category,
        "KP_STORM_RATE": str(rate),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    }
    return PipelineProcess(tmp_path, write_config(tmp_path / "pipeline.toml", sections), env=env)


def _consumer_events(process: PipelineProcess, event: str) -> list[dict[str, object]]:
    return [
        record
        for record in log_events(process.stdout())
        if record.get("event") == event and record.get("child") == KAFKA_CONSUMER
    ]


ESCALATIONS = {
    "transient": (
        {},
        MAX_RESTARTS,
        rf"kafka-pipeline: actor 'kafka_consumer' escalated \(transient\): more than "
        rf"{MAX_RESTARTS} restarts in 60s; last: handler failed on "
        r"\S+\[0\]@\d+ after 1 attempt\(s\): TransientError",
    ),
    "unknown": (
        {},
        MAX_RESTARTS,
        rf"kafka-pipeline: actor 'kafka_consumer' escalated \(transient\): more than "
        rf"{MAX_RESTARTS} restarts in 60s; last: handler failed on "
        r"\S+\[0\]@\d+ after 1 attempt\(s\): RuntimeError",
    ),
    "permanent": (
        {"dead_letter": {"enabled": False}},
        0,
        r"kafka-pipeline: actor 'kafka_consumer' escalated \(permanent\): record "
        r"\S+\[0\]@\d+ failed permanently \(PermanentError\) and dead-lettering is off",
    ),
}


@pytest.mark.parametrize("category", list(ESCALATIONS))
async def test_a_crash_storm_escalates_as_configured_with_exit_1_and_one_line(
    category: str,
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """TRANSIENT/UNKNOWN escalate after max_restarts restarts, PERMANENT at once; exit 1."""
    extra, restarts, line_pattern = ESCALATIONS[category]
    topic = unique_name(f"storm-{category}")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    await produce(bootstrap_servers, topic, workload(category, RECORDS))
    process = _storm(tmp_path, bootstrap_servers, topic, category, 0.9 if restarts else 1.0, extra)
    processes.append(process)
    started = time.monotonic()
    process.start()
    assert await process.exit_code(within=60) == 1
    took = time.monotonic() - started
    [line] = process.stderr().splitlines()
    assert re.fullmatch(line_pattern, line), line
    assert len(_consumer_events(process, "child_restarting")) == restarts
    [escalation] = _consumer_events(process, "child_escalated")
    assert escalation["category"] == ("permanent" if category == "permanent" else "transient")
    reliability_report.record(
        f"3. crash storm: {category}",
        exit_code=1,
        restarts_before_escalation=restarts,
        seconds_to_exit=took,
    )


async def test_a_storm_of_open_circuits_pauses_without_restarts_and_handles_everything(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Every record refused once by an open breaker is handled later; no restart; exit 0."""
    topic = unique_name("storm-open")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    await produce(bootstrap_servers, topic, workload("open", RECORDS))
    process = _storm(tmp_path, bootstrap_servers, topic, "circuit_open", 0.5, {})
    processes.append(process)
    process.start()
    sink = Sink(tmp_path / "handled.jsonl")
    took = await until(
        lambda: sink.count() >= RECORDS, 60, "every refused record is handled", alive=process
    )
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0
    assert sorted(sink.ids()) == sorted(f"open-{n}" for n in range(RECORDS))
    assert _consumer_events(process, "child_restarting") == []
    reliability_report.record(
        "3. crash storm: circuit_open",
        refusals=RECORDS,
        restarts=0,
        records_lost=0,
        seconds_to_handle_all=took,
    )


class OnceRejectedHandler:
    """Fails its first call with AuthError (a broker rejecting the token), then succeeds;
    notes how many token refreshes had happened at each call."""

    def __init__(self) -> None:
        self.refreshes: Callable[[], int] | None = None
        self.refreshes_seen: list[int] = []
        self.handled: list[int] = []

    async def __call__(self, record: Record) -> None:
        assert self.refreshes is not None
        self.refreshes_seen.append(self.refreshes())
        if len(self.refreshes_seen) == 1:
            raise AuthError("the broker rejected the token")
        self.handled.append(record.offset)


async def test_an_auth_failure_refreshes_the_token_before_the_restart(
    bootstrap_servers: str, tmp_path: Path, reliability_report: ReliabilityReport
) -> None:
    """The consumer's AuthError makes the refresher fetch a token before the consumer restarts.

    Runs in process with the consumer's connection PLAINTEXT; the supervisor, the
    refresher and the token file are real (see the module docstring).
    """
    topic, group = unique_name("storm-auth"), unique_name("storm-auth-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    token_file = tmp_path / "token.json"
    token_file.write_text(
        json.dumps({"access_token": "t0ken", "expires_on": int(time.time()) + 3600})
    )
    scope = "https://reliability.servicebus.windows.net/.default"
    config = parse_config(
        textwrap.dedent(
            f"""
            [kafka]
            bootstrap_servers = "{bootstrap_servers}"
            topics = ["{topic}"]
            group_id = "{group}"
            session_timeout_ms = 2000
            heartbeat_interval_ms = 200
            security_protocol = "SASL_PLAINTEXT"
            sasl_mechanism = "OAUTHBEARER"
            [auth]
            method = "token_file"
            token_file = "{token_file}"
            scope = "{scope}"
            [retry]
            max_attempts = 1
            [breaker]
            failure_threshold = 1000
            [supervisor]
            max_restarts = {MAX_RESTARTS}
            backoff_base_s = 0.05
            [health]
            enabled = false
            """
        ),
        environ={},
    )
    handler = OnceRejectedHandler()
    log = tmp_path / "pipeline.log"
    pipeline = Pipeline(config, handler=handler, log_sinks=[FileSink(log)], base_dir=tmp_path)
    handler.refreshes = lambda: pipeline.observe().tokens[scope].refresh_count
    pipeline.consumer_settings = dataclasses.replace(
        pipeline.consumer_settings,
        security_protocol="PLAINTEXT",
        sasl_mechanism=None,
        oauth_token_provider=None,
    )
    async with anyio.create_task_group() as tasks:
        await tasks.start(pipeline.run)
        await until(lambda: pipeline.observe().tokens[scope].fresh, 10, "the first token")
        await produce(bootstrap_servers, topic, workload("auth", 1))
        await until(lambda: handler.handled == [0], 30, "the record is handled after a refresh")
        observed = pipeline.observe()
        pipeline.stop()

    assert handler.refreshes_seen == [1, 2]
    assert observed.actors[KAFKA_CONSUMER].restarts == 1
    assert observed.tokens[scope].refresh_count == 2
    events = [json.loads(line) for line in log.read_text().splitlines()]
    names = [(e.get("event"), e.get("child")) for e in events]
    exited = names.index(("child_exited", KAFKA_CONSUMER))
    refreshed = names.index(("token_refreshed", None), exited)
    restarted = names.index(("child_started", KAFKA_CONSUMER), exited)
    assert events[exited]["category"] == "auth"
    assert exited < names.index(("token_refresh_requested", None), exited) < refreshed < restarted
    reliability_report.record(
        "3. crash storm: auth",
        consumer_restarts=1,
        token_refreshes_before_restart=1,
        escalated="no",
    )
