"""kill -9 of the whole process, five times, while it writes a topic into a Delta table.

The process is the real one (`python -m supervisor run`) configured with the built-in
Delta sink (`handler.target = "delta"`, `[delta] table`): a batch handler, each batch of
one partition's records one Delta commit, batches of the 4 partitions written at once
(`max_in_flight = 4`), a Kafka commit only after the rows it covers are committed to the
table. The kills land at random points: in a Parquet write, between the Delta commit
and the Kafka commit, anywhere. Afterwards the table is read back: each (partition,
offset) of the topic is in it exactly once, no duplicate and none missing. Unlike the
jsonl scenario, no duplicate is allowed at all: the table's transaction identifiers make
a redelivered record a no-op.

A table that refuses every record (here: another schema) stops the process instead:
exit 1 with one line, nothing dead-lettered, nothing committed.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path

import anyio
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from reliability_harness import PipelineProcess, pipeline_sections, until, workload, write_config
from reliability_report import ReliabilityReport

from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio

RECORDS = 50_000
PARTITIONS = 4
KILLS = 5
BATCH = 2_000
"""Records per batch at most: a few dozen Delta commits per life, files of a useful size."""
LONGEST_LIFE_S = 0.2
"""A life is killed within this long after its first Delta commit: at several thousand
records/s a longer life could finish the topic before the last kill."""


def table_version(table: Path) -> int:
    """The table's latest version (-1 before it exists)."""
    return DeltaTable(str(table)).version() if (table / "_delta_log").is_dir() else -1


async def test_five_kill_9_leave_each_record_in_the_delta_table_exactly_once(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """After five kill -9 at random points while writing, the table holds every record once."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    topic, group = unique_name("delta-kills"), unique_name("delta-kills-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    per_partition = RECORDS // PARTITIONS
    for partition in range(PARTITIONS):
        records = workload(f"delta-p{partition}", per_partition)
        await produce(bootstrap_servers, topic, records, partition=partition)
    table = tmp_path / "table"
    sections = pipeline_sections(
        bootstrap_servers,
        topic,
        group,
        {
            "handler": {
                "target": "delta",
                "max_in_flight": PARTITIONS,
                "batch_max_records": BATCH,
                "max_buffered": BATCH * PARTITIONS,
            },
            "delta": {"table": str(table)},
        },
    )
    config = write_config(tmp_path / "pipeline.toml", sections)
    process = PipelineProcess(tmp_path, config)
    processes.append(process)
    started = time.monotonic()

    for _ in range(KILLS):
        process.start()
        before = table_version(table)
        await until(
            partial(lambda start: table_version(table) > start, before),
            60,
            f"life {process.lives} commits to the table",
            alive=process,
        )
        await anyio.sleep(rng.uniform(0.0, LONGEST_LIFE_S))
        process.kill()
    rows_after_kills = DeltaTable(str(table)).to_pyarrow_table(columns=["offset"]).num_rows
    assert rows_after_kills < RECORDS, "the kills came too late: nothing was left to write"

    process.start()

    async def all_committed() -> bool:
        offsets = await committed_offsets(bootstrap_servers, group, topic, PARTITIONS)
        return all(offset == per_partition for offset in offsets.values())

    await until(all_committed, 120, "the last life writes and commits the rest", alive=process)
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0

    data = DeltaTable(str(table)).to_pyarrow_table(columns=["partition", "offset"])
    counts = Counter(
        zip(data.column("partition").to_pylist(), data.column("offset").to_pylist(), strict=True)
    )
    expected = {(p, o) for p in range(PARTITIONS) for o in range(per_partition)}
    missing = expected - set(counts)
    duplicates = {key: count for key, count in counts.items() if count > 1}
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:5]}"
    assert not duplicates, f"{len(duplicates)} records twice or more, e.g. {list(duplicates)[:5]}"
    assert set(counts) == expected

    reliability_report.record(
        "Delta table: kill -9 while writing",
        records=RECORDS,
        batch_max_records=BATCH,
        batches_in_flight=PARTITIONS,
        kills_survived=KILLS,
        rows_written_before_the_last_life=rows_after_kills,
        records_missing=len(missing),
        records_duplicated=len(duplicates),
        table_versions=DeltaTable(str(table)).version(),
        random_seed=seed,
        duration_s=time.monotonic() - started,
    )


async def test_a_table_that_refuses_every_record_stops_the_process_and_dead_letters_nothing(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """A table of another schema: exit 1 with one line naming the table, no dead letter,
    no commit (the records wait for a person to fix the table)."""
    topic, group = unique_name("delta-refused"), unique_name("delta-refused-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    await produce(bootstrap_servers, topic, workload("refused", 100))
    table = tmp_path / "table"
    write_deltalake(str(table), pa.table({"something": pa.array([1], pa.int64())}))
    sections = pipeline_sections(
        bootstrap_servers,
        topic,
        group,
        {"handler": {"target": "delta"}, "delta": {"table": str(table)}},
    )
    process = PipelineProcess(tmp_path, write_config(tmp_path / "pipeline.toml", sections))
    processes.append(process)
    process.start()
    assert await process.exit_code(within=60) == 1
    [line] = process.stderr().splitlines()
    assert "escalated (permanent)" in line
    assert str(table) in line
    dead = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=1, max_wait=2)
    assert dead == []
    assert await committed_offsets(bootstrap_servers, group, topic, 1) == {0: None}
    reliability_report.record(
        "Delta table: a table that refuses every record (another schema)",
        exit_code=1,
        stderr_lines=1,
        records_dead_lettered=len(dead),
        records_committed=0,
    )
