"""Scenario 1: `kill -9` of the whole process at random points while it consumes.

What is asserted, honestly: dedup is on, but its memory lives in the process, so a
record handled and not yet committed when the process is killed reaches the handler
again in the next life. Hence:

- every produced record is handled at least once (nothing lost);
- within one life no record reaches the handler twice (the dedup window);
- a record handled again in a later life had not been committed when the earlier life
  was killed: its offset is at or after the group's committed offset read right after
  the kill (the process is dead then, so that offset is final for that life), i.e.
  duplicates come only from the uncommitted tail, never from before the last commit.

It runs twice on a workload whose 50 keys repeat: one record at a time (the default),
and with `ordering = "key"` and 16 in flight; either way, within each life every key's
records must have been handled in offset order.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from reliability_harness import (
    PipelineProcess,
    Sink,
    key_order_violations,
    pipeline_sections,
    trace_id_of,
    until,
    workload,
    write_config,
)
from reliability_report import ReliabilityReport

from supervisor.testing import committed_offsets, create_topics, produce, unique_name

pytestmark = pytest.mark.anyio

RECORDS = 6_000
PARTITIONS = 4
KILLS = 6
LONGEST_LIFE_S = 0.5
"""A life is killed within this long after it handled its first record: at under 1,000
records/s (the handler below) the lives cannot finish the backlog before the last kill."""

PACED_HANDLER = '''
"""Appends each record to handled.jsonl after KP_PACE_S of work, as a slow downstream would."""
import os
import time
from pathlib import Path

from actors.sinks import JsonLinesHandler

_sink = JsonLinesHandler(Path("handled.jsonl"))


def handle(record):
    time.sleep(float(os.environ["KP_PACE_S"]))
    _sink(record)


handle.before_commit = _sink.before_commit  # fsync once per commit
'''


def _python_path(handler_directory: Path) -> str:
    """PYTHONPATH with the directory holding the test's handler module in front."""
    return os.pathsep.join(filter(None, [str(handler_directory), os.environ.get("PYTHONPATH")]))


def _lives(entries: list[dict[str, Any]], boundaries: list[int]) -> list[list[dict[str, Any]]]:
    """The sink's entries split by life, at the line counts the sink had at each kill."""
    edges = [0, *boundaries, len(entries)]
    return [entries[start:end] for start, end in itertools.pairwise(edges)]


KEYS = 50
"""Distinct keys of the workload, so that records of one key follow each other and
their order can be checked."""


@pytest.mark.parametrize(
    ("ordering", "max_in_flight"), [("partition", 1), ("key", 16)], ids=["sequential", "key-16"]
)
async def test_repeated_kill_9_loses_nothing_and_duplicates_only_the_uncommitted_tail(
    ordering: str,
    max_in_flight: int,
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """After six kill -9 at random points every record is handled; repeats only past commits."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    topic, group = unique_name("kills"), unique_name("kills-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    await produce(bootstrap_servers, topic, workload("kill", RECORDS, keys=KEYS))
    (tmp_path / "kp_paced_handler.py").write_text(PACED_HANDLER)
    handler = {
        "target": "kp_paced_handler:handle",
        "ordering": ordering,
        "max_in_flight": max_in_flight,
    }
    sections = pipeline_sections(bootstrap_servers, topic, group, {"handler": handler})
    config = write_config(tmp_path / "pipeline.toml", sections)
    sink = Sink(tmp_path / "handled.jsonl")
    # 1 ms per record and worker thread: the same pace whatever runs at once, so the lives
    # cannot finish the backlog before the last kill.
    pace = {"PYTHONPATH": _python_path(tmp_path), "KP_PACE_S": str(0.001 * max_in_flight)}
    process = PipelineProcess(tmp_path, config, env=pace)
    processes.append(process)
    started = time.monotonic()

    boundaries: list[int] = []
    committed_at_kill: list[dict[int, int]] = []
    for _ in range(KILLS):
        process.start()
        before = sink.count()
        await until(
            partial(sink.has_more_than, before),
            30,
            f"life {process.lives} handles records",
            alive=process,
        )
        await anyio.sleep(rng.uniform(0.0, LONGEST_LIFE_S))
        process.kill()
        boundaries.append(sink.count())
        offsets = await committed_offsets(bootstrap_servers, group, topic, PARTITIONS)
        committed_at_kill.append({p: offset or 0 for p, offset in offsets.items()})
    assert len(set(sink.ids())) < RECORDS, "the kills came too late: nothing was left to consume"

    process.start()
    expected = {f"kill-{n}" for n in range(RECORDS)}
    await until(
        lambda: set(sink.ids()) >= expected, 60, "the last life handles the rest", alive=process
    )
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0

    entries = sink.entries()
    lives = _lives(entries, boundaries)
    seen_before: set[str] = set()
    repeats = repeats_within_a_life = 0
    out_of_key_order = 0
    for life, handled in enumerate(lives):
        out_of_key_order += key_order_violations(handled)
        ids = [str(trace_id_of(entry)) for entry in handled]
        repeats_within_a_life += len(ids) - len(set(ids))
        for entry in handled:
            if trace_id_of(entry) in seen_before:
                repeats += 1
                floor = committed_at_kill[life - 1][entry["partition"]]
                assert entry["offset"] >= floor, (
                    f"{entry['partition']}@{entry['offset']} was handled again in life "
                    f"{life + 1} although life {life} had committed up to {floor}"
                )
        seen_before.update(ids)
    assert repeats_within_a_life == 0, "dedup let a record through twice within one life"
    assert out_of_key_order == 0, "a key's records were handled out of offset order in a life"
    assert seen_before == expected

    reliability_report.record(
        f"1. kill -9 while consuming (ordering {ordering}, {max_in_flight} in flight)",
        records=RECORDS,
        kills_survived=KILLS,
        records_lost=len(expected - seen_before),
        duplicates_across_lives=repeats,
        duplicates_within_a_life=repeats_within_a_life,
        out_of_key_order_within_a_life=out_of_key_order,
        random_seed=seed,
        duration_s=time.monotonic() - started,
    )
