"""Positions above the log end: when they count as out of range, where they are reset to,
the consumer resetting one that Tansu does not report as out of range, and leaving it to
Apache Kafka's OffsetOutOfRange (the watch off, its default)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from consumer_testing import consumer_settings, running, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.consumer import KafkaConsumerActor, Record
from actors.consumer.out_of_range import BeyondLogEnd, reset_position
from supervisor.testing import EmbeddedBroker, create_topics, produce, unique_name

PARTITIONS = [TopicPartition("orders", 0), TopicPartition("orders", 1)]

checks_strategy = st.lists(
    st.tuples(st.sampled_from(PARTITIONS), st.integers(0, 20), st.integers(0, 20)),
    max_size=40,
)
"""Checks of two partitions, interleaved: (partition, position, high-water mark)."""


@settings(max_examples=200, deadline=None)
@given(confirmations=st.integers(1, 4), checks=checks_strategy)
def test_a_reset_is_confirmed_after_so_many_sightings_in_a_row_per_partition(
    confirmations: int, checks: list[tuple[TopicPartition, int, int]]
) -> None:
    """A partition is confirmed out of range exactly when its current run of checks with the
    position above the high-water mark reaches a multiple of `confirmations`; a check
    within the log ends the run, and other partitions' checks do not touch it."""
    watch = BeyondLogEnd(confirmations)
    runs = dict.fromkeys(PARTITIONS, 0)
    for tp, position, highwater in checks:
        runs[tp] = runs[tp] + 1 if position > highwater else 0
        expected = runs[tp] > 0 and runs[tp] % confirmations == 0
        assert watch.confirmed(tp, position, highwater) is expected


@given(checks=checks_strategy)
def test_a_disabled_watch_never_confirms(checks: list[tuple[TopicPartition, int, int]]) -> None:
    """With the watch off (a broker that reports OffsetOutOfRange) no check confirms a reset,
    however far above the high-water mark the position is."""
    watch = BeyondLogEnd(1, enabled=False)
    assert not any(watch.confirmed(tp, position, highwater) for tp, position, highwater in checks)


def test_forgetting_a_partition_restarts_its_count() -> None:
    """After `forget` (a fresh assignment) the sightings before it no longer count."""
    watch = BeyondLogEnd(2)
    tp = PARTITIONS[0]
    assert not watch.confirmed(tp, 50, 0)
    watch.forget([tp])
    assert not watch.confirmed(tp, 50, 0)
    assert watch.confirmed(tp, 50, 0)


def test_fewer_than_one_confirmation_is_refused() -> None:
    """A watch that would reset without seeing anything is a configuration error."""
    with pytest.raises(ValueError, match="at least 1"):
        BeyondLogEnd(0)


@pytest.mark.anyio
@pytest.mark.parametrize(("policy", "expected"), [("earliest", 0), ("latest", 7)])
async def test_a_reset_goes_where_the_policy_says(
    bootstrap_servers: str, policy: Literal["earliest", "latest"], expected: int
) -> None:
    """ "earliest" seeks to the log start, "latest" to the given high-water mark (not to the
    broker's "latest" offset, which Tansu gets wrong), and the consumer reads from there."""
    topic = unique_name("reset")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"v%d" % n) for n in range(10)])
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 50)
        offset = await reset_position(consumer, tp, policy, highwater=7)
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (offset, record.offset) == (expected, expected)


@pytest.mark.anyio
async def test_the_consumer_resets_a_committed_offset_above_the_log_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A group whose committed offset lies above the log end (the broker lost records) is
    reset by auto_offset_reset, with a warning naming the partition and both positions,
    and every record the log holds is handled. Its own Tansu: Apache Kafka would answer
    OffsetOutOfRange and aiokafka reset by itself; Tansu answers an empty fetch."""
    caplog.set_level(logging.WARNING, logger="actors.consumer.loop")
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        bootstrap = broker.bootstrap_servers
        topic = unique_name("lost")
        await create_topics(bootstrap, [topic])
        await produce(bootstrap, topic, [(b"k%d" % n, b"v%d" % n) for n in range(10)])
        config = consumer_settings(
            bootstrap,
            topic,
            stall_timeout_s=2.0,
            reset_beyond_log_end=True,
            idempotent_producer=False,  # Tansu has no idempotent producer
        )
        await _commit(bootstrap, config.group_id, TopicPartition(topic, 0), 50)
        handled: list[Record] = []
        async with running(KafkaConsumerActor(config, handled.append)):
            await wait_until(lambda: len(handled) >= 10)
    assert [record.offset for record in handled] == list(range(10))
    assert f"{topic}[0]: position 50 is above the log end 10" in caplog.text
    assert "reset to 0 by auto_offset_reset=earliest" in caplog.text


@pytest.mark.anyio
async def test_apache_kafka_reports_a_committed_offset_above_the_log_end_itself(
    bootstrap_servers: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the watch off (the default), a committed offset above the log end is reset by
    the broker's OffsetOutOfRange and aiokafka's auto_offset_reset: every record the log
    holds is handled, and the consumer's own beyond-log-end reset never fires."""
    caplog.set_level(logging.WARNING, logger="actors.consumer.loop")
    topic = unique_name("lost")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(b"k%d" % n, b"v%d" % n) for n in range(10)])
    config = consumer_settings(bootstrap_servers, topic, stall_timeout_s=2.0)
    assert config.reset_beyond_log_end is False
    await _commit(bootstrap_servers, config.group_id, TopicPartition(topic, 0), 50)
    handled: list[Record] = []
    async with running(KafkaConsumerActor(config, handled.append)):
        await wait_until(lambda: len(handled) >= 10)
    assert [record.offset for record in handled] == list(range(10))
    assert "above the log end" not in caplog.text


async def _commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    """Commit `offset` for `group` as a consumer outside the group would."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()
