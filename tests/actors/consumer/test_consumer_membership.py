"""Group membership as the consumer sees it, and a member the broker forgot not committing
the offsets of a log the broker no longer has."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata
from consumer_testing import consumer_settings, running, wait_until

from actors.consumer import KafkaConsumerActor, Record
from actors.consumer.membership import is_group_member, refuse_commits_outside_the_group
from supervisor.testing import (
    committed_offsets,
    create_topics,
    produce,
    unique_name,
)
from supervisor.testing.apache_kafka import ApacheKafkaBroker

pytestmark = pytest.mark.anyio

PARTITIONS = 4


async def test_a_consumer_is_a_member_from_its_join_until_it_stops(
    bootstrap_servers: str,
) -> None:
    """Not a member before starting, a member once the group assigned it partitions, and
    not a member after stopping (it left the group)."""
    topic = unique_name("members")
    await create_topics(bootstrap_servers, [topic])
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=unique_name("group"),
        enable_auto_commit=False,
    )
    before = is_group_member(consumer)
    await consumer.start()
    try:
        with anyio.fail_after(10):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
        during = is_group_member(consumer)
    finally:
        await consumer.stop()
    assert (before, during, is_group_member(consumer)) == (False, True, False)


async def test_a_broker_restarted_empty_gets_no_offsets_of_its_old_log(tmp_path: Path) -> None:
    """A broker killed while handled offsets were still to be committed comes back empty
    (its disk lost: the log directory is wiped); the consumer, no longer a member, does
    not commit them on the revocation that precedes its rejoin, so every record produced
    afterwards is handled, and committed on exit by the member it is again.

    Eight records follow five: a stale commit (5, or more) would lie within the new log
    and skip its first offsets. Some new records may be handled twice: the broker's
    OffsetOutOfRange moves the consumer to the new log's start before the heartbeat
    learns it was forgotten, and the member it is again reads from there. A ninth record,
    produced once the group is stable again, marks that the new member caught up."""
    no_auto_create = {"auto.create.topics.enable": "false"}  # the consumer waits for the test's
    with ApacheKafkaBroker(directory=tmp_path / "kafka", properties=no_auto_create) as broker:
        bootstrap = broker.bootstrap_servers
        topic = unique_name("restarted")
        await create_topics(bootstrap, [topic], partitions=PARTITIONS)
        await produce(bootstrap, topic, [(None, b"old%d" % n) for n in range(5)], partition=0)
        config = consumer_settings(bootstrap, topic, commit_interval_s=60.0)
        handled: list[Record] = []
        new = {b"new%d" % n for n in range(8)}
        async with running(KafkaConsumerActor(config, handled.append)):
            await wait_until(lambda: len(handled) >= 5)
            broker.kill()
            shutil.rmtree(broker.data_dir)
            await anyio.to_thread.run_sync(broker.start)
            await create_topics(bootstrap, [topic], partitions=PARTITIONS)
            await produce(bootstrap, topic, [(None, value) for value in sorted(new)], partition=0)
            await wait_until(lambda: new <= {record.value for record in handled})
            await _until_stable(bootstrap, config.group_id)  # a member again: it may commit
            await produce(bootstrap, topic, [(None, b"last")], partition=0)
            await wait_until(lambda: b"last" in {record.value for record in handled})
        committed = await committed_offsets(bootstrap, config.group_id, topic, 1)
    assert committed == {0: 9}


async def test_a_commit_after_the_group_forgot_the_member_is_refused(
    bootstrap_servers: str,
) -> None:
    """Once the coordinator's generation is reset (what aiokafka's heartbeat does when the
    broker answers UnknownMemberId; called directly here), a commit request fails with
    CommitFailedError instead of going out with generation -1, and nothing is committed."""
    topic = unique_name("forgotten")
    await create_topics(bootstrap_servers, [topic])
    group = unique_name("group")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        refuse_commits_outside_the_group(consumer)
        with anyio.fail_after(10):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
        partition = TopicPartition(topic, 0)
        await consumer.commit({partition: OffsetAndMetadata(1, "")})
        consumer._coordinator.reset_generation()
        with pytest.raises(CommitFailedError):
            await consumer.commit({partition: OffsetAndMetadata(2, "")})
    finally:
        await consumer.stop()
    assert await committed_offsets(bootstrap_servers, group, topic, 1) == {0: 1}


async def test_refusing_commits_needs_a_started_consumer() -> None:
    """Before `start()` there is no coordinator to guard: a clear error, not a silent no-op."""
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", group_id="g")
    with pytest.raises(RuntimeError, match="start it first"):
        refuse_commits_outside_the_group(consumer)


async def test_a_member_id_without_a_generation_commits_nothing(bootstrap_servers: str) -> None:
    """Mid-join aiokafka holds a member id while the generation is still -1 (set directly
    here, as its join does on MemberIdRequired): a commit then is refused as well."""
    topic = unique_name("mid-join")
    await create_topics(bootstrap_servers, [topic])
    group = unique_name("group")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        refuse_commits_outside_the_group(consumer)
        with anyio.fail_after(10):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100)
        consumer._coordinator.generation = -1
        with pytest.raises(CommitFailedError):
            await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(1, "")})
    finally:
        await consumer.stop()
    assert await committed_offsets(bootstrap_servers, group, topic, 1) == {0: None}


async def _until_stable(bootstrap: str, group: str, seconds: float = 20.0) -> None:
    """Wait until the broker reports `group` Stable (its member joined and was assigned)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with anyio.fail_after(seconds):
            while True:
                (response,) = await admin.describe_consumer_groups([group])
                state = response.groups[0][2]
                if state == "Stable":
                    return
                await anyio.sleep(0.1)
    finally:
        await admin.close()
