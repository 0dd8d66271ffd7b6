"""Scenario: `kill -9` of the whole process while failed records wait in retry tiers.

Every fifth record fails its first handling (TRANSIENT) and goes to a 2 s tier at once.
The process is killed three times at random points once it runs: while source records
are being handled and tier produces are in flight, and while records wait in the tier
(at least one kill finds records produced to the tier and not yet handled from it; the
test checks that it did). What must hold: every record is handled (nothing lost: a
record whose tier produce was not acknowledged was not committed either, so it is
delivered again; one that was is read from the tier by a later life), each failing
record is handled from the tier, and nothing reaches the dead-letter topic.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import anyio
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from reliability_harness import (
    PipelineProcess,
    Sink,
    pipeline_sections,
    ready_partitions,
    until,
    workload,
    write_config,
)
from reliability_report import ReliabilityReport

from supervisor.testing import create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio


async def end_offset_sum(bootstrap: str, topic: str, partitions: int) -> int:
    """How many records `topic` holds (the sum of its partitions' end offsets)."""
    client = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await client.start()
    try:
        ends = await client.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await client.stop()


RECORDS = 400
PARTITIONS = 2
KILLS = 3
FAILING_EVERY = 5
TIER = "2s"

FAILING_ONCE_HANDLER = '''
"""Appends each record to handled.jsonl; every fifth fails its first handling."""
import json
import os
import time
from pathlib import Path

from actors.sinks import JsonLinesHandler
from core.errors import TransientError

_sink = JsonLinesHandler(Path("handled.jsonl"))


def handle(record):
    time.sleep(0.005)
    if json.loads(record.value)["n"] % 5 == 0 and record.attempt == 0:
        raise TransientError("downstream busy")
    _sink(record)


handle.before_commit = _sink.before_commit
'''


async def test_kill_9_while_records_wait_in_a_tier_loses_nothing(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """After three kill -9 at random points, every record is handled, the failing ones
    from the tier, and the dead-letter topic is empty."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    topic, group = unique_name("tiers"), unique_name("tiers-g")
    tier_topic = f"{topic}.retry.{TIER}"
    await create_topics(
        bootstrap_servers, [topic, f"{topic}.dlq", tier_topic], partitions=PARTITIONS
    )
    await produce(bootstrap_servers, topic, workload("tier", RECORDS))
    (tmp_path / "kp_failing_once.py").write_text(FAILING_ONCE_HANDLER)
    sections = pipeline_sections(
        bootstrap_servers,
        topic,
        group,
        {
            "handler": {"target": "kp_failing_once:handle"},
            "retry_topics": {"delays": [TIER], "after_in_place_attempts": False},
            "breaker": {"failure_threshold": 10_000},
        },
    )
    config = write_config(tmp_path / "pipeline.toml", sections)
    sink = Sink(tmp_path / "handled.jsonl")
    process = PipelineProcess(tmp_path, config, env={"PYTHONPATH": str(tmp_path)})
    processes.append(process)
    started = time.monotonic()

    port = int(str(sections["health"]["port"]))

    async def ready() -> bool:
        return await ready_partitions(port) is not None

    waiting_at_kills: list[int] = []
    for _ in range(KILLS):
        process.start()
        await until(ready, 30, f"life {process.lives} is ready", alive=process)
        await anyio.sleep(rng.uniform(0.2, 2.5))
        process.kill()
        produced = await end_offset_sum(bootstrap_servers, tier_topic, PARTITIONS)
        from_tier = sum(1 for entry in sink.entries() if entry["topic"] == tier_topic)
        waiting_at_kills.append(produced - from_tier)
    assert max(waiting_at_kills) > 0, f"no kill found records in the tier: {waiting_at_kills}"

    process.start()
    expected = {f"tier-{n}" for n in range(RECORDS)}
    await until(
        lambda: set(sink.ids()) >= expected, 60, "the last life handles the rest", alive=process
    )
    # The earlier lives may have handled everything: stop the last one once it runs.
    await until(ready, 30, "the last life is ready", alive=process)
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0

    entries = sink.entries()
    handled_ids = set(sink.ids())
    failing = {f"tier-{n}" for n in range(0, RECORDS, FAILING_EVERY)}
    retried = {
        id_ for id_, entry in zip(sink.ids(), entries, strict=True) if entry["topic"] == tier_topic
    }
    assert handled_ids == expected
    assert retried == failing, "a failing record was handled other than from the tier"
    letters = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=1, max_wait=0.5)
    assert letters == []

    reliability_report.record(
        "kill -9 while records wait in a retry tier",
        records=RECORDS,
        kills_survived=KILLS,
        records_lost=len(expected - handled_ids),
        handled_from_the_tier=len(retried),
        waiting_in_the_tier_at_each_kill=waiting_at_kills,
        dead_lettered=len(letters),
        random_seed=seed,
        duration_s=time.monotonic() - started,
    )
