"""Scenario 5: SIGTERM while records are in flight.

The process is stopped in the middle of a 20,000-record backlog. It must exit 0 within
its graceful-stop deadline; what it handled must be exactly what it committed (the
committed offset of each partition equals the number of records handled there, each
offset once); and the log shipper must deliver everything queued: the handler logs one
line per record, and every one of them, plus the final stop events, is in the log file.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from reliability_harness import (
    PipelineProcess,
    Sink,
    log_events,
    partition_counts,
    pipeline_sections,
    until,
    workload,
    write_config,
)
from reliability_report import ReliabilityReport

from supervisor.testing import committed_offsets, create_topics, produce, unique_name

pytestmark = pytest.mark.anyio

RECORDS = 20_000
PARTITIONS = 2
DEADLINE_S = 10

LOGGING_HANDLER = '''
"""After 1 ms of work, appends each record to handled.jsonl and logs a line naming it."""
import logging
from pathlib import Path

import anyio

from actors.sinks import JsonLinesHandler

_sink = JsonLinesHandler(Path("handled.jsonl"))
_log = logging.getLogger("kp_logging_handler")


async def handle(record):
    await anyio.sleep(0.001)  # a downstream call: records are in flight when SIGTERM comes
    _sink(record)
    trace_id = dict(record.headers)["trace_id"].decode()
    _log.info("handled %s", trace_id, extra={"event": "record_handled", "trace_id": trace_id})


handle.before_commit = _sink.before_commit  # fsync once per commit
'''


async def test_sigterm_under_load_exits_0_commits_what_was_handled_and_ships_every_log(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Exit 0 within the deadline; committed == handled per partition; no log line lost."""
    topic, group = unique_name("stop"), unique_name("stop-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    await produce(bootstrap_servers, topic, workload("stop", RECORDS))
    (tmp_path / "kp_logging_handler.py").write_text(LOGGING_HANDLER)
    sections = pipeline_sections(
        bootstrap_servers,
        topic,
        group,
        {
            "handler": {"target": "kp_logging_handler:handle"},
            "logging": {"file": "pipeline.log"},
            "supervisor": {"graceful_stop_s": DEADLINE_S},
        },
    )
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    }
    process = PipelineProcess(tmp_path, write_config(tmp_path / "pipeline.toml", sections), env=env)
    processes.append(process)
    process.start()
    sink = Sink(tmp_path / "handled.jsonl")
    await until(
        lambda: sink.count() >= 2_000, 60, "the process is busy with the backlog", alive=process
    )

    process.signal(signal.SIGTERM)
    stopping = time.monotonic()
    assert await process.exit_code(within=DEADLINE_S + 5) == 0
    took = time.monotonic() - stopping
    assert took < DEADLINE_S

    entries = sink.entries()
    assert len(entries) < RECORDS, "the backlog was finished before the signal"
    handled = partition_counts(entries)
    for partition in range(PARTITIONS):
        offsets = sorted(e["offset"] for e in entries if e["partition"] == partition)
        assert offsets == list(range(handled.get(partition, 0)))
    committed = await committed_offsets(bootstrap_servers, group, topic, PARTITIONS)
    assert committed == {p: handled.get(p) for p in range(PARTITIONS)}

    logged = log_events((tmp_path / "pipeline.log").read_text())
    logged_ids = [e["trace_id"] for e in logged if e.get("event") == "record_handled"]
    assert sorted(logged_ids) == sorted(sink.ids())
    stop_events = [(e.get("event"), e.get("child")) for e in logged]
    assert ("stop_requested", None) in stop_events
    assert ("child_stopped", "kafka_consumer") in stop_events
    assert stop_events[-1] == ("child_stopped", "log_shipper")
    reliability_report.record(
        "5. SIGTERM under load",
        records_handled_before_stop=len(entries),
        committed_equals_handled="yes",
        log_lines_shipped=len(logged),
        log_lines_lost=len(entries) - len(logged_ids),
        seconds_to_exit=took,
        deadline_s=DEADLINE_S,
    )
