"""Retry tiers against a real broker: records that fail come back from the right tiers
no earlier than they are due, end handled or dead-lettered with their history, block
nothing meanwhile, and keep their pause across a rebalance."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from consumer_testing import consumer_settings, running, wait_until

from actors.consumer import KafkaConsumerActor, Record
from actors.consumer.retry_tiers.settings import RetryTierSettings
from core.errors import PipelineError, TransientError
from core.resilience.circuit_config import CircuitBreakerConfig
from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio

PATIENT_BREAKER = CircuitBreakerConfig(failure_threshold=1000)
"""The failures here are scheduled, not an outage: the handler's breaker stays closed."""
TIER_LIMIT = 1024
"""max.message.bytes of a tier topic that refuses the copies of larger records."""


def now_ms() -> int:
    """Wall-clock milliseconds, as due times are written."""
    return time.time_ns() // 1_000_000


@dataclass
class Seen:
    """One handler call: which record, from where, when, which attempt, its due time."""

    value: bytes
    topic: str
    attempt: int
    origin: tuple[str, int, int]
    at_ms: int
    due_ms: int | None
    ok: bool


@dataclass
class FailingHandler:
    """Fails a record while its attempt is below the number `fail_first` names for it."""

    fail_first: dict[bytes, int]
    calls: list[Seen] = field(default_factory=list)

    async def __call__(self, record: Record) -> None:
        due = record.header("retry.due.ms")
        value = record.value or b""
        ok = record.attempt >= self.fail_first.get(value, 0)
        self.calls.append(
            Seen(
                value,
                record.topic,
                record.attempt,
                (record.original_topic, record.original_partition, record.original_offset),
                now_ms(),
                int(due) if due is not None else None,
                ok,
            )
        )
        if not ok:
            raise TransientError(f"downstream unavailable for {value!r}")

    def handled(self, value: bytes) -> list[Seen]:
        """The successful calls for `value`."""
        return [s for s in self.calls if s.value == value and s.ok]


async def make_topics(bootstrap: str, tiers: RetryTierSettings, partitions: int) -> str:
    """A fresh source topic with its tier topics and dead-letter topic."""
    source = unique_name("orders")
    names = [source, f"{source}.dlq"] + [tiers.topic(source, i) for i in range(len(tiers.delays_s))]
    await create_topics(bootstrap, names, partitions=partitions)
    await topics_known(bootstrap, names)
    return source


async def topics_known(bootstrap: str, names: list[str]) -> None:
    """Wait until the broker's metadata lists `names` (a consumer that subscribes before
    then would not see a topic until its next metadata refresh)."""
    client = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await client.start()
    try:
        for _ in range(200):
            if set(names) <= await client.topics():
                return
            await anyio.sleep(0.05)
        pytest.fail(f"topics {names} not in the broker's metadata after 10 s")
    finally:
        await client.stop()


async def test_failed_records_return_from_each_tier_when_due_and_end_handled_or_dead_lettered(
    bootstrap_servers: str,
) -> None:
    """Records failing 1, 2 and 3 times come back from tier 0, then tier 1, never before
    their due time; the third reaches the dead-letter topic with its whole history; the
    other records are handled before any retry; every offset is committed."""
    tiers = RetryTierSettings(delays_s=(1, 2))
    source = await make_topics(bootstrap_servers, tiers, partitions=2)
    values = [f"v{i}".encode() for i in range(20)]
    handler = FailingHandler({b"v3": 1, b"v7": 2, b"v11": 3})
    settings = consumer_settings(
        bootstrap_servers, source, retry_tiers=tiers, breaker=PATIENT_BREAKER
    )
    await produce(bootstrap_servers, source, [(f"k{i}".encode(), v) for i, v in enumerate(values)])
    actor = KafkaConsumerActor(settings, handler)
    async with running(actor):
        await wait_until(lambda: handler.handled(b"v3") and handler.handled(b"v7"), 30)
        await wait_until(lambda: actor.stats.dead_lettered == 1, 30)
        await wait_until(
            lambda: all(
                v is not None
                for topic in (source, tiers.topic(source, 0), tiers.topic(source, 1))
                for v in actor.stats.committed.values()
            ),
            10,
        )
    for value in values:
        if value != b"v11":
            assert len(handler.handled(value)) == 1, value
    first_retry = min(s.at_ms for s in handler.calls if s.attempt > 0)
    for value in values:
        if value not in (b"v3", b"v7", b"v11"):
            assert handler.handled(value)[0].at_ms < first_retry
    for seen in handler.calls:
        if seen.attempt == 0:
            assert seen.topic == source
            assert seen.due_ms is None
        else:
            assert seen.topic == tiers.topic(source, seen.attempt - 1)
            assert seen.due_ms is not None
            assert seen.at_ms >= seen.due_ms
            assert seen.origin[0] == source
    v7 = [s for s in handler.calls if s.value == b"v7"]
    assert [s.attempt for s in v7][-1] == 2
    failures = [s.at_ms for s in v7 if not s.ok]
    assert v7[-1].at_ms - failures[-1] >= 2000 - 50  # the 2 s tier, from its last failure
    letters = await read_topic(bootstrap_servers, f"{source}.dlq", expected=1)
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert letters[0].value == b"v11"
    assert headers["retry.attempt"] == "3"
    assert headers["retry.original.topic"] == source
    assert len(headers["retry.history"].split(";")) == 3
    assert headers["dlq.error.class"] == "core.errors.exceptions.TransientError"
    assert [k for k, _ in letters[0].headers].count("retry.attempt") == 1
    sent = actor.stats.snapshot().tier_sent
    assert sent == {tiers.topic(source, 0): 3, tiers.topic(source, 1): 2}
    for topic in (source, tiers.topic(source, 0), tiers.topic(source, 1)):
        offsets = await committed_offsets(bootstrap_servers, settings.group_id, topic, 2)
        assert (
            sum(o or 0 for o in offsets.values())
            == {
                source: 20,
                tiers.topic(source, 0): 3,
                tiers.topic(source, 1): 2,
            }[topic]
        )


async def test_a_rebalance_while_a_record_waits_in_a_tier_keeps_it_parked(
    bootstrap_servers: str,
) -> None:
    """A second member joins and leaves while a record waits out a 3 s tier: the record is
    handled once, by either member, and not before it is due."""
    tiers = RetryTierSettings(delays_s=(3,), after_in_place_attempts=False)
    source = await make_topics(bootstrap_servers, tiers, partitions=2)
    handler = FailingHandler({b"late": 1})
    settings = consumer_settings(
        bootstrap_servers, source, retry_tiers=tiers, breaker=PATIENT_BREAKER
    )
    await produce(bootstrap_servers, source, [(b"k", b"late"), (b"j", b"other")])
    first = KafkaConsumerActor(settings, handler)
    second = KafkaConsumerActor(settings, handler)
    async with running(first):
        await wait_until(lambda: first.stats.snapshot().tier_sent != {}, 15)
        sent_at = now_ms()
        async with running(second):
            await wait_until(lambda: len(second.stats.assigned) > 0, 15)
            await anyio.sleep(0.5)
        await wait_until(lambda: bool(handler.handled(b"late")), 20)
    done = handler.handled(b"late")
    assert len(done) == 1
    assert done[0].due_ms is not None
    assert done[0].at_ms >= done[0].due_ms
    assert done[0].at_ms - sent_at >= 3000 - 100


async def test_with_key_order_kept_a_keys_later_records_wait_behind_its_retried_one(
    bootstrap_servers: str,
) -> None:
    """The first record of key `a` fails once: with preserve_key_order, `a`'s later records
    are handled after it, in offset order, while key `b` goes on at once."""
    tiers = RetryTierSettings(delays_s=(1,), after_in_place_attempts=False, preserve_key_order=True)
    source = await make_topics(bootstrap_servers, tiers, partitions=1)
    handler = FailingHandler({b"a0": 1})
    settings = consumer_settings(
        bootstrap_servers, source, retry_tiers=tiers, breaker=PATIENT_BREAKER
    )
    records = [(b"a", b"a0"), (b"b", b"b0"), (b"a", b"a1"), (b"b", b"b1"), (b"a", b"a2")]
    await produce(bootstrap_servers, source, records)
    actor = KafkaConsumerActor(settings, handler)
    async with running(actor):
        await wait_until(lambda: all(handler.handled(v) for _, v in records), 20)
        await wait_until(lambda: len(actor.state.keys_in_retry or ()) == 0, 5)
    order = [s.value for s in handler.calls if s.ok]
    a_order = [v for v in order if v.startswith(b"a")]
    assert a_order == [b"a0", b"a1", b"a2"]
    assert order.index(b"b1") < order.index(b"a0")
    assert [s.value for s in handler.calls].count(b"a1") == 1  # held back, not handled twice
    assert actor.stats.snapshot().tier_sent == {tiers.topic(source, 0): 3}


async def test_a_tier_copy_the_broker_refuses_holds_the_commit_back_and_ends_the_consumer(
    bootstrap_servers: str,
) -> None:
    """The tier topic refuses a failed record's copy (its max.message.bytes is below the
    record's size): the consumer exits naming that record, the commit stops right before
    it although later records were handled, and the next life handles it: nothing lost."""
    tiers = RetryTierSettings(delays_s=(1,), after_in_place_attempts=False)
    source = unique_name("orders")
    await create_topics(bootstrap_servers, [source, f"{source}.dlq"])
    tier = tiers.topic(source, 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        small = {"max.message.bytes": str(TIER_LIMIT)}
        await admin.create_topics([NewTopic(tier, 1, 1, topic_configs=small)])
    finally:
        await admin.close()
    await topics_known(bootstrap_servers, [source, f"{source}.dlq", tier])
    values = [f"v{i}.".encode() + b"x" * (2 * TIER_LIMIT) for i in range(20)]
    await produce(bootstrap_servers, source, [(f"k{i}".encode(), v) for i, v in enumerate(values)])
    settings = consumer_settings(
        bootstrap_servers, source, retry_tiers=tiers, breaker=PATIENT_BREAKER
    )
    first = FailingHandler({values[5]: 1})
    with anyio.fail_after(30), pytest.raises(PipelineError, match="not acknowledged") as caught:
        await KafkaConsumerActor(settings, first).run()
    assert isinstance(caught.value.__cause__, KafkaError)
    assert f"{source}[0]@5" in str(caught.value)
    assert await committed_offsets(bootstrap_servers, settings.group_id, source, 1) == {0: 5}
    handled_first = {s.value for s in first.calls if s.ok}
    assert set(values[:5]) <= handled_first
    assert handled_first & set(values[6:])  # handled, yet not committed: held back
    assert await read_topic(bootstrap_servers, tier, expected=1, max_wait=1.0) == []

    second = FailingHandler({})
    async with running(KafkaConsumerActor(settings, second)):
        await wait_until(lambda: all(second.handled(v) for v in values[5:]), 20)
    handled = {s.value for s in first.calls + second.calls if s.ok}
    assert handled == set(values)
    assert await committed_offsets(bootstrap_servers, settings.group_id, source, 1) == {0: 20}
