"""Scenario 5: SIGTERM while records are in flight, then a second life.

The process is stopped in the middle of a backlog whose 100 keys repeat. It must exit 0
within its graceful-stop deadline; each partition must be committed exactly up to its
first record that was not handled (everything before it handled once, nothing
handled left uncommitted behind a gap: the finished prefix); the log shipper must
deliver everything queued (the handler logs one line per record, and every one of them,
plus the final stop events, is in the log file). A second life then handles the rest:
nothing is lost, and what it handles again lies past the first life's commit.

It runs one record at a time (the default), where the handled records of a partition
are exactly its committed prefix, and with `ordering = "key"` and 16 in flight, where
records of other keys may have finished past the first one left unstarted: those are
delivered again in the next life (at-least-once). In both, within each life every
key's records are handled in offset order.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from reliability_harness import (
    PipelineProcess,
    Sink,
    key_order_violations,
    log_events,
    pipeline_sections,
    trace_id_of,
    until,
    workload,
    write_config,
)
from reliability_report import ReliabilityReport

from supervisor.testing import committed_offsets, create_topics, produce, unique_name

pytestmark = pytest.mark.anyio

RECORDS = 4_000
PARTITIONS = 2
KEYS = 100
BUSY_AT = 1_000
"""The signal comes once this many records were handled: a quarter of the backlog."""
DEADLINE_S = 10

LOGGING_HANDLER = '''
"""After KP_PACE_S of work, appends each record to handled.jsonl and logs a line naming it."""
import logging
import os
from pathlib import Path

import anyio

from actors.sinks import JsonLinesHandler

_sink = JsonLinesHandler(Path("handled.jsonl"))
_log = logging.getLogger("kp_logging_handler")
_PACE_S = float(os.environ["KP_PACE_S"])


async def handle(record):
    await anyio.sleep(_PACE_S)  # a downstream call: records are in flight when SIGTERM comes
    _sink(record)
    trace_id = dict(record.headers)["trace_id"].decode()
    _log.info("handled %s", trace_id, extra={"event": "record_handled", "trace_id": trace_id})


handle.before_commit = _sink.before_commit  # fsync once per commit
'''


def _first_unhandled(entries: list[dict[str, Any]], partition: int) -> int:
    """The first offset of `partition` that no entry handled."""
    handled = {e["offset"] for e in entries if e["partition"] == partition}
    return next(offset for offset in itertools.count() if offset not in handled)


@pytest.mark.parametrize(
    ("ordering", "max_in_flight"), [("partition", 1), ("key", 16)], ids=["sequential", "key-16"]
)
async def test_sigterm_under_load_exits_0_commits_the_finished_prefix_and_ships_every_log(
    ordering: str,
    max_in_flight: int,
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Exit 0 within the deadline; each partition committed up to its first unhandled
    record; no log line lost; the next life handles the rest, each key in order."""
    topic, group = unique_name("stop"), unique_name("stop-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    await produce(bootstrap_servers, topic, workload("stop", RECORDS, keys=KEYS))
    (tmp_path / "kp_logging_handler.py").write_text(LOGGING_HANDLER)
    sections = pipeline_sections(
        bootstrap_servers,
        topic,
        group,
        {
            "handler": {
                "target": "kp_logging_handler:handle",
                "ordering": ordering,
                "max_in_flight": max_in_flight,
            },
            "logging": {"file": "pipeline.log"},
            "supervisor": {"graceful_stop_s": DEADLINE_S},
        },
    )
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        # 1 ms per record and record in flight: the same pace whatever runs at once
        "KP_PACE_S": str(0.001 * max_in_flight),
    }
    process = PipelineProcess(tmp_path, write_config(tmp_path / "pipeline.toml", sections), env=env)
    processes.append(process)
    process.start()
    sink = Sink(tmp_path / "handled.jsonl")
    await until(
        lambda: sink.count() >= BUSY_AT, 60, "the process is busy with the backlog", alive=process
    )

    process.signal(signal.SIGTERM)
    stopping = time.monotonic()
    assert await process.exit_code(within=DEADLINE_S + 5) == 0
    took = time.monotonic() - stopping
    assert took < DEADLINE_S

    first_life = sink.entries()
    assert len(first_life) < RECORDS, "the backlog was finished before the signal"
    ids = sink.ids()
    assert len(ids) == len(set(ids)), "a record was handled twice in one life"
    committed = await committed_offsets(bootstrap_servers, group, topic, PARTITIONS)
    first_unhandled = {p: _first_unhandled(first_life, p) for p in range(PARTITIONS)}
    assert {p: offset or 0 for p, offset in committed.items()} == first_unhandled
    beyond_commit = [e for e in first_life if e["offset"] >= first_unhandled[e["partition"]]]
    if ordering == "partition":
        assert not beyond_commit, "one record at a time, what was handled is the prefix"

    logged = log_events((tmp_path / "pipeline.log").read_text())
    logged_ids = [e["trace_id"] for e in logged if e.get("event") == "record_handled"]
    assert sorted(logged_ids) == sorted(ids)
    stop_events = [(e.get("event"), e.get("child")) for e in logged]
    assert ("stop_requested", None) in stop_events
    assert ("child_stopped", "kafka_consumer") in stop_events
    assert stop_events[-1] == ("child_stopped", "log_shipper")

    process.start()
    expected = {f"stop-{n}" for n in range(RECORDS)}
    await until(
        lambda: set(sink.ids()) >= expected, 60, "the next life handles the rest", alive=process
    )
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=DEADLINE_S + 5) == 0
    second_life = sink.entries()[len(first_life) :]
    handled_before = {str(trace_id_of(e)) for e in first_life}
    again = [e for e in second_life if trace_id_of(e) in handled_before]
    for entry in again:
        assert entry["offset"] >= first_unhandled[entry["partition"]], entry
    second_ids = [str(trace_id_of(e)) for e in second_life]
    assert len(second_ids) == len(set(second_ids)), "a record was handled twice in one life"
    out_of_key_order = key_order_violations(first_life) + key_order_violations(second_life)
    assert out_of_key_order == 0, "a key's records were handled out of offset order in a life"
    assert set(sink.ids()) == expected

    reliability_report.record(
        f"5. SIGTERM under load (ordering {ordering}, {max_in_flight} in flight)",
        records_handled_before_stop=len(first_life),
        committed_equals_first_unhandled="yes",
        handled_past_the_commit=len(beyond_commit),
        handled_again_next_life=len(again),
        records_lost=len(expected - set(sink.ids())),
        out_of_key_order_within_a_life=out_of_key_order,
        log_lines_shipped=len(logged),
        log_lines_lost=len(ids) - len(logged_ids),
        seconds_to_exit=took,
        deadline_s=DEADLINE_S,
    )
