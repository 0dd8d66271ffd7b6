"""The Delta sink behind today's consumer (per-record handler + before_commit), on a real
broker: a crash after the Delta commit and before the Kafka commit, then a new process of
the same group, leaves each record once in the table; a bad record is dead-lettered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from delta_testing import rows_per_coordinate, wait_until

from actors.consumer import ConsumerSettings, KafkaConsumerActor
from actors.sinks.delta import DeltaRecordHandler, DeltaSink, DeltaSinkSettings
from core.errors import PermanentError
from supervisor.testing import committed_offsets, create_topics, produce, unique_name

pytestmark = pytest.mark.anyio

PARTITIONS = 2
PER_PARTITION = 150


def consumer_settings(bootstrap: str, topic: str, **overrides: Any) -> ConsumerSettings:
    """Quick group joins and commits, a fresh group."""
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topics": (topic,),
        "group_id": unique_name("group"),
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 200,
        "commit_interval_s": 0.1,
    }
    return ConsumerSettings(**(values | overrides))


@asynccontextmanager
async def running(actor: KafkaConsumerActor) -> AsyncIterator[None]:
    """Run `actor` for the block, then stop it gracefully."""
    async with anyio.create_task_group() as tasks:
        await tasks.start(actor.run)
        try:
            yield
        finally:
            actor.stop()


class CrashAfterDeltaCommit(DeltaRecordHandler):
    """Writes the buffers like the real handler, then dies before the Kafka commit."""

    async def before_commit(self) -> None:
        await super().before_commit()
        raise PermanentError("killed between the Delta commit and the Kafka commit")


async def test_a_crash_between_the_delta_and_the_kafka_commit_leaves_each_record_once(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """The first process writes every record to Delta and dies before committing to Kafka;
    the next one gets them all again and adds nothing: each record is in the table once."""
    topic = unique_name("delta")
    await create_topics(bootstrap_servers, [topic], partitions=PARTITIONS)
    for partition in range(PARTITIONS):
        values = [(None, b"p%do%d" % (partition, i)) for i in range(PER_PARTITION)]
        await produce(bootstrap_servers, topic, values, partition=partition)
    table = tmp_path / "table"
    config = consumer_settings(bootstrap_servers, topic, dead_letter_topic=None)

    def sink() -> DeltaSink:
        return DeltaSink(DeltaSinkSettings(table=str(table)), group_id=config.group_id)

    crashing = CrashAfterDeltaCommit(sink())
    with pytest.raises(BaseExceptionGroup) as ended:
        async with anyio.create_task_group() as tasks:
            await tasks.start(KafkaConsumerActor(config, crashing).run)
    assert ended.group_contains(PermanentError)
    committed = await committed_offsets(bootstrap_servers, config.group_id, topic, PARTITIONS)
    assert committed == dict.fromkeys(range(PARTITIONS))
    written_before = sum(rows_per_coordinate(table).values())
    assert written_before > 0

    handler = DeltaRecordHandler(sink())
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        await wait_until(
            lambda: all(
                actor.stats.committed.get((topic, p)) == PER_PARTITION for p in range(PARTITIONS)
            ),
            seconds=30,
        )
    await handler.aclose()
    counts = rows_per_coordinate(table)
    expected = {(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)}
    assert set(counts) == expected
    assert set(counts.values()) == {1}


async def test_a_value_that_cannot_become_a_row_is_dead_lettered_alone(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    """A non-JSON value among JSON ones goes to the dead-letter topic; the others are rows."""
    topic = unique_name("delta-json")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=1)
    values = [orjson.dumps({"path": f"a/{i}", "size": i}) for i in range(20)]
    values[7] = b"not json"
    await produce(bootstrap_servers, topic, [(None, value) for value in values])
    config = consumer_settings(bootstrap_servers, topic)
    settings = DeltaSinkSettings(
        table=str(tmp_path / "t"), value="json", columns={"path": "string", "size": "long"}
    )
    handler = DeltaRecordHandler(DeltaSink(settings, group_id=config.group_id))
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        await wait_until(lambda: actor.stats.committed.get((topic, 0)) == 20, seconds=30)
    await handler.aclose()
    assert sorted(rows_per_coordinate(tmp_path / "t")) == [(0, o) for o in range(20) if o != 7]
    assert actor.stats.dead_lettered == 1
