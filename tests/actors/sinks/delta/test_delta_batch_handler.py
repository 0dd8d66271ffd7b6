"""The Delta sink as the consumer's batch handler, on a real broker and a local table.

Batches of several partitions run at once and the group's commit never runs ahead of the
table; a consumer that stops after a Delta commit and before the Kafka commit, then a
new consumer of the same group, leave each record once in the table; a value that
cannot become a row is dead-lettered alone; a table that refuses every record stops the
consumer without a dead letter or a commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson
import pyarrow as pa
import pytest
from consumer_testing import consumer_settings as quick_settings
from consumer_testing import running
from delta_testing import rows_per_coordinate, wait_until
from deltalake import write_deltalake

from actors.consumer import BatchResult, ConsumerSettings, KafkaConsumerActor
from actors.messages import Record
from actors.sinks.delta import DeltaBatchHandler, DeltaSink, DeltaSinkSettings
from core.errors import ConfigurationError
from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio

PARTITIONS = 4
PER_PARTITION = 150


def consumer_settings(bootstrap: str, topic: str, **overrides: Any) -> ConsumerSettings:
    """The tests' consumer settings, committing every 50 ms, batches of up to 40 records."""
    batches: dict[str, Any] = {
        "commit_interval_s": 0.05,
        "batch_max_records": 40,
        "batch_max_wait_ms": 20,
    }
    return quick_settings(bootstrap, topic, **(batches | overrides))


async def consume_all(actor: KafkaConsumerActor, topic: str) -> None:
    """Run `actor` until every partition of `topic` is committed to its end, then stop it."""
    async with running(actor):
        await wait_until(
            lambda: all(
                actor.stats.committed.get((topic, p)) == PER_PARTITION for p in range(PARTITIONS)
            ),
            seconds=30,
        )


async def produce_partitions(bootstrap: str, topic: str) -> None:
    """PER_PARTITION records into each of the topic's PARTITIONS partitions."""
    for partition in range(PARTITIONS):
        values = [(None, b"p%do%d" % (partition, i)) for i in range(PER_PARTITION)]
        await produce(bootstrap, topic, values, partition=partition)


class CommitWatchingHandler(DeltaBatchHandler):
    """The real handler, which also notes, as each batch starts, whether the consumer had
    already committed past the batch's first record (it must not: that row is not in the
    table yet), and how many batches ran at once."""

    def __init__(self, sink: DeltaSink) -> None:
        super().__init__(sink)
        self.actor: KafkaConsumerActor | None = None
        self.ahead_of_the_table: list[tuple[int, int, int]] = []
        self.running = self.most_at_once = 0

    async def _write(self, records: Sequence[Record]) -> BatchResult:
        first = records[0]
        assert self.actor is not None
        committed = self.actor.stats.committed.get((first.topic, first.partition), 0)
        if committed > first.offset:
            self.ahead_of_the_table.append((first.partition, first.offset, committed))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await anyio.sleep(0.02)  # a slow table: batches of other partitions overlap
            return await super()._write(records)
        finally:
            self.running -= 1


async def test_batches_of_four_partitions_run_at_once_and_no_commit_runs_ahead_of_the_table(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """With 4 in flight, partitions' batches overlap; every record is one row; no batch
    started with its first offset already committed."""
    topic = unique_name("delta-batches")
    await create_topics(bootstrap_servers, [topic], partitions=PARTITIONS)
    await produce_partitions(bootstrap_servers, topic)
    table = tmp_path / "table"
    config = consumer_settings(
        bootstrap_servers, topic, dead_letter_topic=None, max_in_flight=PARTITIONS
    )
    handler = CommitWatchingHandler(
        DeltaSink(DeltaSinkSettings(table=str(table)), group_id=config.group_id)
    )
    actor = KafkaConsumerActor(config, handler)
    handler.actor = actor
    await consume_all(actor, topic)
    await handler.aclose()
    assert handler.ahead_of_the_table == []
    assert handler.most_at_once > 1
    counts = rows_per_coordinate(table)
    assert set(counts) == {(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)}
    assert set(counts.values()) == {1}


class StopsAfterDeltaCommit(DeltaBatchHandler):
    """Writes the batch like the real handler, then fails as a broken deployment does:
    the consumer exits before any Kafka commit covers the batch."""

    async def _write(self, records: Sequence[Record]) -> BatchResult:
        await super()._write(records)
        raise ConfigurationError("stopped between the Delta commit and the Kafka commit")


async def test_a_stop_between_the_delta_and_the_kafka_commit_leaves_each_record_once(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """The first consumer writes a batch to Delta and exits before committing to Kafka;
    the next one gets everything again and adds that batch no second time."""
    topic = unique_name("delta")
    await create_topics(bootstrap_servers, [topic], partitions=PARTITIONS)
    await produce_partitions(bootstrap_servers, topic)
    table = tmp_path / "table"
    config = consumer_settings(bootstrap_servers, topic, dead_letter_topic=None)

    def sink() -> DeltaSink:
        return DeltaSink(DeltaSinkSettings(table=str(table)), group_id=config.group_id)

    with pytest.raises(BaseExceptionGroup) as ended:
        async with anyio.create_task_group() as tasks:
            await tasks.start(KafkaConsumerActor(config, StopsAfterDeltaCommit(sink())).run)
    assert ended.group_contains(ConfigurationError)
    committed = await committed_offsets(bootstrap_servers, config.group_id, topic, PARTITIONS)
    assert committed == dict.fromkeys(range(PARTITIONS))
    written_before = sum(rows_per_coordinate(table).values())
    assert written_before > 0

    handler = DeltaBatchHandler(sink())
    actor = KafkaConsumerActor(config, handler)
    await consume_all(actor, topic)
    await handler.aclose()
    counts = rows_per_coordinate(table)
    assert set(counts) == {(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)}
    assert set(counts.values()) == {1}


async def test_a_value_that_cannot_become_a_row_is_dead_lettered_alone(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """Non-JSON values among JSON ones go to the dead-letter topic; the rest of their
    batch is rows."""
    topic = unique_name("delta-json")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=1)
    values = [orjson.dumps({"path": f"a/{i}", "size": i}) for i in range(60)]
    bad = {7, 8, 45}
    for offset in bad:
        values[offset] = b"not json"
    await produce(bootstrap_servers, topic, [(None, value) for value in values])
    config = consumer_settings(bootstrap_servers, topic)
    settings = DeltaSinkSettings(
        table=str(tmp_path / "t"), value="json", columns={"path": "string", "size": "long"}
    )
    handler = DeltaBatchHandler(DeltaSink(settings, group_id=config.group_id))
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        await wait_until(lambda: actor.stats.committed.get((topic, 0)) == 60, seconds=30)
    await handler.aclose()
    assert sorted(rows_per_coordinate(tmp_path / "t")) == [
        (0, o) for o in range(60) if o not in bad
    ]
    assert actor.stats.dead_lettered == len(bad)
    letters = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=len(bad))
    assert sorted(int(dict(r.headers)["dlq.source.offset"]) for r in letters) == sorted(bad)


async def test_a_table_that_refuses_every_record_stops_the_consumer_without_dead_letters(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """An existing table of another schema: the consumer exits with a ConfigurationError
    naming the table, dead-letters nothing and commits nothing."""
    topic = unique_name("delta-schema")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=1)
    await produce(bootstrap_servers, topic, [(None, b"v%d" % i) for i in range(30)])
    table = tmp_path / "t"
    write_deltalake(str(table), pa.table({"something": pa.array([1], pa.int64())}))
    config = consumer_settings(bootstrap_servers, topic)
    handler = DeltaBatchHandler(DeltaSink(DeltaSinkSettings(table=str(table)), group_id="g"))
    actor = KafkaConsumerActor(config, handler)
    with pytest.raises(BaseExceptionGroup) as ended:
        async with anyio.create_task_group() as tasks:
            await tasks.start(actor.run)
    assert ended.group_contains(ConfigurationError, match=re.escape(str(table)), depth=None)
    assert actor.stats.dead_lettered == 0
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: None}
    assert await read_topic(bootstrap_servers, f"{topic}.dlq", expected=1, max_wait=1) == []
