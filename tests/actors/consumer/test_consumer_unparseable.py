"""Recovering from fetches aiokafka cannot parse, against a real broker: every readable
record comes out once and in order, what cannot be read is set aside with its bytes,
and partitions move strictly forward.

These tests produce damaged batches on purpose. Apache Kafka checks each batch it
appends (a bad CRC is CORRUPT_MESSAGE, a record that does not add up INVALID_RECORD), so
on it such bytes come only from damaged storage or a broker that does not check; the
module therefore runs on an embedded Tansu, which stores batches exactly as sent, the
way a damaged log would serve them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from consumer_testing import consumer_settings, running, wait_until
from raw_batches import RawRecord, batch_bytes, produce_raw, record_body, varint

from actors.consumer import KafkaConsumerActor, Record
from actors.consumer.dead_letter import DeadLetterWriter
from actors.consumer.raw_fetch import fetch_raw
from actors.consumer.tolerant_batches import parse_batch, split_batches
from actors.consumer.unparseable import (
    FETCH_PARSE_ERRORS,
    FetchStart,
    Unparseable,
    fetch_positions,
    recover,
)
from core.types import ErrorCategory
from supervisor.testing import create_topics, produce, read_topic, unique_name
from supervisor.testing.embedded_broker import EmbeddedBroker

pytestmark = [pytest.mark.anyio, pytest.mark.broker]


@pytest.fixture(scope="module")
def bootstrap_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Tansu broker for this module: it keeps damaged batches as they were produced."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    try:
        broker = EmbeddedBroker(log_path=log).start()
    except Exception as exc:  # the broker is required: fail loudly, naming the cause
        pytest.fail(f"could not start the embedded Tansu broker: {exc!r}", pytrace=False)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


NOT_UTF8: bytes = b"\xff\xfe"


@dataclass
class Consumed:
    """What the fetch path handed over, what it set aside, and each recovery's moves."""

    values: dict[int, list[bytes | None]] = field(default_factory=dict)
    headers: dict[bytes | None, tuple[tuple[str, bytes | None], ...]] = field(default_factory=dict)
    unparseable: list[Unparseable] = field(default_factory=list)
    recoveries: list[tuple[dict[TopicPartition, int], dict[TopicPartition, int]]] = field(
        default_factory=list
    )

    def take(self, message: Any) -> None:
        self.values.setdefault(message.partition, []).append(message.value)
        self.headers[message.value] = tuple(message.headers)


async def consume(consumer: AIOKafkaConsumer, wanted: int, rounds: int = 60) -> Consumed:
    """The fetch path as the pipeline runs it (positions before `getmany`, `recover` on a
    parse error), until `wanted` records and set-aside parts came out or `rounds` ran."""
    consumed = Consumed()
    for _ in range(rounds):
        start = fetch_positions(consumer)
        try:
            batch = await consumer.getmany(timeout_ms=300)
        except FETCH_PARSE_ERRORS:
            recovery = await recover(consumer, start)
            consumed.recoveries.append((dict(start.offsets), dict(recovery.positions)))
            consumed.unparseable.extend(recovery.unparseable)
            for messages in recovery.records.values():
                for message in messages:
                    consumed.take(message)
        else:
            for messages in batch.values():
                for message in messages:
                    consumed.take(message)
        total = sum(map(len, consumed.values.values())) + len(consumed.unparseable)
        if total >= wanted:
            break
    return consumed


async def started_consumer(bootstrap: str, tps: list[TopicPartition]) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)
    return consumer


async def fetch_nothing_until_it_raises(consumer: AIOKafkaConsumer) -> None:
    """Fetch until `getmany` raises; fail if it returns any record first."""
    for _ in range(20):
        assert await consumer.getmany(timeout_ms=300) == {}


def produce_with_a_non_utf8_header_key(
    bootstrap: str, topic: str, values: list[bytes], compression: str | None
) -> None:
    """Send `values` to partition 0 in one linger window with aiokafka's pure-Python builder,
    whose header key of `bad*` values encodes to bytes that are not UTF-8 (any client
    could write them; aiokafka's own str-only API needs a str whose encode() lies)."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from aiokafka import AIOKafkaProducer

        class NotUtf8(str):
            def encode(self, *args, **kwargs):
                return bytes.fromhex(sys.argv[3])

        async def main():
            producer = AIOKafkaProducer(
                bootstrap_servers=sys.argv[1], linger_ms=500, compression_type=sys.argv[4] or None)
            await producer.start()
            sent = []
            for value in sys.argv[5:]:
                key = NotUtf8("k") if value.startswith("bad") else "ok"
                sent.append(await producer.send(
                    sys.argv[2], value.encode(), partition=0, headers=[(key, b"h")]))
            for future in sent:
                await future
            await producer.stop()

        asyncio.run(main())
        """
    )
    env = os.environ | {"AIOKAFKA_NO_EXTENSIONS": "1"}
    argv = [sys.executable, "-c", script, bootstrap, topic, NOT_UTF8.hex(), compression or ""]
    argv += [v.decode() for v in values]
    subprocess.run(argv, env=env, check=True, timeout=60)


async def test_aiokafka_alone_meets_the_bad_batch_forever(bootstrap_servers: str) -> None:
    """Without recovery, aiokafka never gets past a header key that is not UTF-8: every
    fetch raises, the position stays, and seeking past the bad record raises too (the
    batch is parsed from its start); the records before it in the batch never come out."""
    topic = unique_name("unparseable-aiokafka")
    await create_topics(bootstrap_servers, [topic])
    tp = TopicPartition(topic, 0)
    records = [RawRecord(b"a"), RawRecord(b"bad", headers=[(NOT_UTF8, b"h")]), RawRecord(b"c")]
    await produce_raw(bootstrap_servers, tp, [batch_bytes(records)])
    consumer = await started_consumer(bootstrap_servers, [tp])
    try:
        for start in (0, 0, 2):
            consumer.seek(tp, start)
            with pytest.raises(FETCH_PARSE_ERRORS):
                await fetch_nothing_until_it_raises(consumer)
            assert await consumer.position(tp) == start
    finally:
        await consumer.stop()


@pytest.mark.parametrize("compression", [None, "gzip"])
async def test_a_non_utf8_header_key_costs_no_record_of_its_batch(
    bootstrap_servers: str, compression: str | None
) -> None:
    """Records before and after a non-UTF-8 header key, in its own producer batch (plain or
    compressed) and in the batches around it, all come out once and in order; the key
    reads with U+FFFD; the partition moves past the batch once and fetching then goes on
    without error."""
    topic = unique_name("unparseable-key")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"before%d" % n) for n in range(3)])
    same_batch = [b"with%d" % n for n in range(3)] + [b"bad"] + [b"with%d" % n for n in range(3, 6)]
    await anyio.to_thread.run_sync(
        produce_with_a_non_utf8_header_key, bootstrap_servers, topic, same_batch, compression
    )
    await produce(bootstrap_servers, topic, [(None, b"after%d" % n) for n in range(3)])
    tp = TopicPartition(topic, 0)
    consumer = await started_consumer(bootstrap_servers, [tp])
    try:
        batches, _ = split_batches(await fetch_raw(consumer, tp, 0))
        [(raw, shared)] = [
            (raw, parsed)
            for raw, parsed in ((raw, parse_batch(raw)) for raw in batches)
            if b"bad" in [r.value for r in parsed.records]
        ]
        assert [r.value for r in shared.records] == same_batch, "one producer batch"
        assert raw[22] & 0x07 == (1 if compression else 0), "compressed as asked"
        consumed = await consume(consumer, 13)
        assert await consumer.getmany(timeout_ms=300) == {}
    finally:
        await consumer.stop()
    expected = [b"before%d" % n for n in range(3)] + same_batch + [b"after%d" % n for n in range(3)]
    assert consumed.values == {0: expected}
    assert consumed.headers[b"bad"] == (("\ufffd\ufffd", b"h"),)
    assert consumed.headers[b"with0"] == (("ok", b"h"),)
    assert consumed.unparseable == []
    assert len(consumed.recoveries) == 1
    [(before, after)] = consumed.recoveries
    assert after[tp] > before[tp]


async def test_records_drained_from_other_partitions_are_fetched_again(
    bootstrap_servers: str,
) -> None:
    """A parse error in one partition drops what the same fetch drained from the others
    (aiokafka moved their positions past it); after the recovery those partitions are read
    again from the offsets expected before the fetch, so every record comes out once."""
    topic = unique_name("unparseable-drained")
    await create_topics(bootstrap_servers, [topic], partitions=2)
    bad = TopicPartition(topic, 0)
    good = TopicPartition(topic, 1)
    records = [RawRecord(b"p0-%d" % n) for n in range(2)]
    records.append(RawRecord(b"p0-bad", headers=[(NOT_UTF8, b"h")]))
    records += [RawRecord(b"p0-%d" % n) for n in range(2, 4)]
    await produce_raw(bootstrap_servers, bad, [batch_bytes(records)])
    await produce(bootstrap_servers, topic, [(None, b"p1-%d" % n) for n in range(5)], partition=1)
    consumer = await started_consumer(bootstrap_servers, [bad, good])
    try:
        consumed = await consume(consumer, 10)
    finally:
        await consumer.stop()
    assert consumed.values == {
        0: [b"p0-0", b"p0-1", b"p0-bad", b"p0-2", b"p0-3"],
        1: [b"p1-%d" % n for n in range(5)],
    }
    for before, after in consumed.recoveries:
        assert after[bad] > before[bad]
        assert after[good] == before[good]


async def test_a_record_that_cannot_be_framed_is_skipped_with_its_bytes(
    bootstrap_servers: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A record whose body does not add up is skipped alone, with an ERROR naming topic,
    partition and offset and its exact bytes set aside; its batch's other records and the
    batches around it all come out (the broker stores such a batch as sent)."""
    topic = unique_name("unparseable-frame")
    await create_topics(bootstrap_servers, [topic])
    tp = TopicPartition(topic, 0)
    broken = RawRecord(b"broken", extra=b"\x00\x07")
    broken_bytes = varint(len(record_body(1, broken))) + record_body(1, broken)
    await produce(bootstrap_servers, topic, [(None, b"first")])
    await produce_raw(
        bootstrap_servers, tp, [batch_bytes([RawRecord(b"a"), broken, RawRecord(b"c")])]
    )
    await produce(bootstrap_servers, topic, [(None, b"last")])
    consumer = await started_consumer(bootstrap_servers, [tp])
    try:
        with caplog.at_level(logging.ERROR, logger="actors.consumer.unparseable"):
            consumed = await consume(consumer, 5)
        assert await consumer.getmany(timeout_ms=300) == {}
    finally:
        await consumer.stop()
    assert consumed.values == {0: [b"first", b"a", b"c", b"last"]}
    [part] = consumed.unparseable
    assert (part.topic, part.partition, part.first_offset, part.last_offset) == (topic, 0, 2, 2)
    assert part.raw == broken_bytes
    assert f"{topic}[0] offset 2 cannot be parsed" in caplog.text


async def test_a_batch_whose_crc_is_wrong_is_set_aside_whole(bootstrap_servers: str) -> None:
    """A batch that fails aiokafka's CRC check (Tansu stores it as sent) is skipped as one
    part spanning its offsets, with the batch's bytes; the batches around it come out."""
    topic = unique_name("unparseable-crc")
    await create_topics(bootstrap_servers, [topic])
    tp = TopicPartition(topic, 0)
    await produce(bootstrap_servers, topic, [(None, b"first")])
    corrupt = batch_bytes([RawRecord(b"x"), RawRecord(b"y")], break_crc=True)
    await produce_raw(bootstrap_servers, tp, [corrupt])
    await produce(bootstrap_servers, topic, [(None, b"last")])
    consumer = await started_consumer(bootstrap_servers, [tp])
    try:
        consumed = await consume(consumer, 3)
    finally:
        await consumer.stop()
    assert consumed.values == {0: [b"first", b"last"]}
    [part] = consumed.unparseable
    assert (part.first_offset, part.last_offset) == (1, 2)
    assert part.raw[12:] == corrupt[12:]  # the broker sets the base offset
    [(before, after)] = consumed.recoveries
    assert (before[tp], after[tp]) == (0, 3)  # "first" was parsed in the fetch that failed


async def test_a_second_recovery_at_the_same_offsets_moves_on_again(
    bootstrap_servers: str,
) -> None:
    """Recovering twice from the same expected offsets (a caller that rewound) hands over
    the same readable records and ends at the same position after the bad batch: it
    never goes back before it, so the stream cannot loop."""
    topic = unique_name("unparseable-twice")
    await create_topics(bootstrap_servers, [topic])
    tp = TopicPartition(topic, 0)
    records = [RawRecord(b"a"), RawRecord(b"b", headers=[(NOT_UTF8, None)]), RawRecord(b"c")]
    await produce_raw(bootstrap_servers, tp, [batch_bytes(records)])
    consumer = await started_consumer(bootstrap_servers, [tp])
    try:
        with pytest.raises(FETCH_PARSE_ERRORS):
            await fetch_nothing_until_it_raises(consumer)
        results = [await recover(consumer, FetchStart({tp: 1})) for _ in range(2)]
        assert await consumer.getmany(timeout_ms=300) == {}
    finally:
        await consumer.stop()
    for result in results:
        assert [m.value for m in result.records[tp]] == [b"b", b"c"]
        assert result.positions == {tp: 3}


async def test_what_is_set_aside_reaches_the_dead_letter_topic_as_raw_bytes(
    bootstrap_servers: str,
) -> None:
    """An unparseable part dead-letters through the existing writer: its raw bytes as the
    value, dlq.source.* naming where it was, and the error saying what it is."""
    topic = unique_name("unparseable-dlq")
    dlq = f"{topic}.dlq"
    await create_topics(bootstrap_servers, [dlq])
    part = Unparseable(topic, 3, 41, 41, "2 bytes left over after the headers", b"\x0e\x00raw")
    writer = DeadLetterWriter({"bootstrap_servers": bootstrap_servers, "acks": "all"})
    await writer.start()
    try:
        await writer.write(dlq, part.dead_letter_record(), part.error, ErrorCategory.PERMANENT)
    finally:
        await writer.stop()
    [stored] = await read_topic(bootstrap_servers, dlq, expected=1)
    headers = dict(stored.headers)
    assert stored.value == part.raw
    assert headers["dlq.source.topic"] == topic.encode()
    assert (headers["dlq.source.partition"], headers["dlq.source.offset"]) == (b"3", b"41")
    assert headers["dlq.error.class"] == b"actors.consumer.unparseable.UnparseableRecordError"
    assert b"offset 41 cannot be parsed" in headers["dlq.error.message"]


@pytest.mark.parametrize("committed", [None, 2])
async def test_a_group_member_whose_first_fetch_fails_recovers_from_its_start(
    bootstrap_servers: str, committed: int | None
) -> None:
    """A member that had no position yet when its first fetch failed recovers from its
    committed offset, or from where auto_offset_reset put it: the records from there on
    come out once and in order."""
    topic = unique_name("unparseable-member")
    group = unique_name("group")
    await create_topics(bootstrap_servers, [topic])
    tp = TopicPartition(topic, 0)
    values = [b"a", b"b", b"c", b"bad", b"e"]
    records = [RawRecord(v, headers=[(NOT_UTF8 if v == b"bad" else b"ok", b"h")]) for v in values]
    await produce_raw(bootstrap_servers, tp, [batch_bytes(records)])
    if committed is not None:
        committer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group)
        await committer.start()
        try:
            committer.assign([tp])
            await committer.commit({tp: committed})
        finally:
            await committer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumed = await consume(consumer, len(values) - (committed or 0))
    finally:
        await consumer.stop()
    assert consumed.values == {0: values[committed or 0 :]}


async def test_after_a_rebalance_during_the_failed_fetch_it_recovers_from_the_commit(
    bootstrap_servers: str,
) -> None:
    """Offsets taken under an assignment that was replaced during the failed fetch no
    longer say what was handed over: every partition starts again from its committed
    offset (here below the stale position, so nothing is skipped)."""
    topic = unique_name("unparseable-rebalance")
    await create_topics(bootstrap_servers, [topic])
    tp = TopicPartition(topic, 0)
    values = [b"a", b"b", b"c", b"bad", b"e"]
    records = [RawRecord(v, headers=[(NOT_UTF8 if v == b"bad" else b"ok", b"h")]) for v in values]
    await produce_raw(bootstrap_servers, tp, [batch_bytes(records)])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=unique_name("group"), enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: 1})
        consumer.seek(tp, 3)
        stale = fetch_positions(consumer)
        consumer.assign([tp])  # a new assignment, as after a rebalance
        recovery = await recover(consumer, stale)
    finally:
        await consumer.stop()
    assert stale.offsets == {tp: 3}
    assert [m.value for m in recovery.records[tp]] == values[1:]
    assert recovery.positions == {tp: 5}


async def test_a_consumer_without_a_group_recovers_from_where_it_was_reset(
    bootstrap_servers: str,
) -> None:
    """A consumer outside any group (nothing can be committed) whose first fetch failed
    before it had a position recovers from where auto_offset_reset put it."""
    topic = unique_name("unparseable-nogroup")
    await create_topics(bootstrap_servers, [topic])
    tp = TopicPartition(topic, 0)
    values = [b"a", b"bad", b"c"]
    records = [RawRecord(v, headers=[(NOT_UTF8 if v == b"bad" else b"ok", b"h")]) for v in values]
    await produce_raw(bootstrap_servers, tp, [batch_bytes(records)])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumed = await consume(consumer, len(values))
    finally:
        await consumer.stop()
    assert consumed.values == {0: values}


async def test_the_consumer_actor_goes_on_past_unreadable_records_and_commits_to_the_end(
    bootstrap_servers: str,
) -> None:
    """Through the consumer actor: a header key that is not UTF-8 and a record that cannot
    be framed do not stop the partition; every readable record is handled once, the
    unreadable one is counted and dead-lettered as raw bytes, and the commit reaches the end."""
    topic = unique_name("unparseable-actor")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    tp = TopicPartition(topic, 0)
    broken = RawRecord(b"broken", extra=b"\x00\x07")
    await produce(bootstrap_servers, topic, [(None, b"first")])
    await produce_raw(
        bootstrap_servers,
        tp,
        [
            batch_bytes(
                [RawRecord(b"a"), RawRecord(b"b", headers=[(NOT_UTF8, b"h")]), broken],
            ),
            batch_bytes([RawRecord(b"c")], base_offset=0),
        ],
    )
    await produce(bootstrap_servers, topic, [(None, b"last")])
    handled: list[bytes] = []

    async def handle(record: Record) -> None:
        assert record.value is not None
        handled.append(record.value)

    settings = consumer_settings(bootstrap_servers, topic, idempotent_producer=False)  # Tansu
    actor = KafkaConsumerActor(settings, handle)
    async with running(actor):
        await wait_until(lambda: b"last" in handled, 30)
        await wait_until(lambda: actor.state.stats.committed.get((topic, 0)) == 6, 30)
    assert handled == [b"first", b"a", b"b", b"c", b"last"]
    assert actor.state.stats.unparseable == 1
    [dead] = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=1)
    assert dict(dead.headers)["dlq.source.offset"] == b"3"
