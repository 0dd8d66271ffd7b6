"""Scenario 6: two processes in one consumer group share a 6-partition topic; one leaves.

Scale-out is Kafka's group protocol, nothing home-made: both processes consume (each
reports its share of partitions on /readyz and handles records), then one goes away and
every record produced all along is handled by one process or the other. After `kill -9`
the group notices once the session times out (session_timeout_ms=2000); after SIGTERM
the leaving member commits and sends LeaveGroup, so the survivor is assigned at once
(the report shows both takeover times).

Each way of leaving runs one record at a time (the default) and with `ordering = "key"`
and 16 in flight, on records whose 100 keys repeat; either way each member handles
every key's records in offset order (a member's output is one life).
"""

from __future__ import annotations

import signal
import time
from functools import partial
from pathlib import Path

import anyio
import pytest
from reliability_harness import (
    PipelineProcess,
    RetryingProducer,
    Sink,
    key_order_violations,
    pipeline_sections,
    produce_until,
    ready_partitions,
    until,
    write_config,
)
from reliability_report import ReliabilityReport

from supervisor.testing import create_topics, unique_name

pytestmark = pytest.mark.anyio

PARTITIONS = 6
ALL = set(range(PARTITIONS))
KEYS = 100


@pytest.mark.parametrize(
    ("ordering", "max_in_flight"), [("partition", 1), ("key", 16)], ids=["sequential", "key-16"]
)
@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
async def test_the_survivor_takes_over_a_leaving_members_partitions_and_nothing_is_lost(
    how: str,
    ordering: str,
    max_in_flight: int,
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Both members consume; after kill -9 or SIGTERM of one the other owns all 6 and
    handles all, each key in order; the one stopped by SIGTERM exits 0."""
    topic, group = unique_name("takeover"), unique_name("takeover-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    members = {}
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        handler = {"ordering": ordering, "max_in_flight": max_in_flight}
        sections = pipeline_sections(bootstrap_servers, topic, group, {"handler": handler})
        port = int(str(sections["health"]["port"]))
        config = write_config(workdir / "pipeline.toml", sections)
        process = PipelineProcess(workdir, config, name=name)
        processes.append(process)
        members[name] = (process, port, Sink(workdir / "handled.jsonl"))
    (a, a_port, a_sink), (b, b_port, b_sink) = members["a"], members["b"]

    produced: list[str] = []
    stop = anyio.Event()
    producer = RetryingProducer(bootstrap_servers)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            partial(produce_until, prefix="group", pause_s=0.002, keys=KEYS),
            stop,
            producer,
            topic,
            produced,
        )
        a.start()
        await until(lambda: a_sink.count() > 0, 30, "the first member consumes")
        b.start()

        async def split() -> bool:
            mine, theirs = await ready_partitions(a_port), await ready_partitions(b_port)
            return bool(mine and theirs and mine | theirs == ALL and not mine & theirs)

        await until(split, 30, "the two members split the partitions")
        b_share = await ready_partitions(b_port)
        assert b_share is not None
        a_before = a_sink.count()
        await until(lambda: b_sink.count() > 0, 30, "the second member consumes")
        await until(lambda: a_sink.count() > a_before, 30, "the first member goes on consuming")
        await anyio.sleep(1)  # a few commits of both members

        if how == "kill -9":
            b.kill()
        else:
            b.signal(signal.SIGTERM)
        killed_at = time.monotonic()

        async def took_over() -> bool:
            return await ready_partitions(a_port) == ALL

        takeover = await until(took_over, 30, "the survivor owns every partition")
        if how == "SIGTERM":
            assert await b.exit_code(within=15) == 0
        b_handled = b_sink.count()
        await anyio.sleep(1)
        stop.set()

    expected = set(produced)
    await until(
        lambda: expected <= set(a_sink.ids()) | set(b_sink.ids()), 60, "every record handled"
    )
    a.signal(signal.SIGTERM)
    assert await a.exit_code(within=15) == 0
    after_kill = {e["partition"] for e in a_sink.entries()[a_before:]}
    assert b_share <= after_kill, "the survivor handled records of the killed member's share"
    handled = set(a_sink.ids()) | set(b_sink.ids())
    duplicates = a_sink.count() + b_sink.count() - len(handled)
    out_of_key_order = key_order_violations(a_sink.entries()) + key_order_violations(
        b_sink.entries()
    )
    assert out_of_key_order == 0, "a member handled a key's records out of offset order"
    reliability_report.record(
        f"6. group takeover after {how} (ordering {ordering}, {max_in_flight} in flight)",
        records_produced=len(expected),
        records_lost=len(expected - handled),
        duplicates=duplicates,
        out_of_key_order_within_a_life=out_of_key_order,
        handled_by_killed_member=b_handled,
        killed_members_partitions=len(b_share),
        takeover_s=takeover,
        total_s_after_kill=time.monotonic() - killed_at,
    )
