"""The Kafka consumer actor under pressure: breaker pauses, commands, rebalances, poison
storms, spent retries and a vanished broker; all against a real broker."""

from __future__ import annotations

import time

import anyio
import pytest
from aiokafka import AIOKafkaProducer
from consumer_testing import POLL_INTERVAL, consumer_settings, running, wait_until

from actors.consumer import (
    ConsumerState,
    KafkaConsumerActor,
    PartitionCommand,
    PoisonGuardSettings,
    Record,
)
from actors.messages import PausePartitions, ResumePartitions
from core.errors import AuthError, PermanentError, TransientError
from core.resilience.circuit_breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from supervisor.testing import (
    committed_offsets,
    create_topics,
    produce,
    read_topic,
    unique_name,
)
from supervisor.testing.apache_kafka import ApacheKafkaBroker

pytestmark = pytest.mark.anyio


def fully_paused(actor: KafkaConsumerActor) -> bool:
    """True when the actor owns partitions and every one of them is paused."""
    stats = actor.stats.snapshot()
    return bool(stats.assigned) and stats.paused == stats.assigned


async def test_open_breaker_pauses_then_a_trial_resumes_and_closes(bootstrap_servers: str) -> None:
    """While the handler's dependency is down its breaker opens and the partitions pause,
    nothing is skipped; once the dependency is back, a half-open trial succeeds, the
    breaker closes, fetching resumes and every record is handled once, in order."""
    topic = unique_name("breaker")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"%d" % i) for i in range(10)])
    dependency_up = False
    handled: list[int] = []

    async def handler(record: Record) -> None:
        if not dependency_up:
            raise TransientError("downstream unavailable")
        handled.append(record.offset)

    config = consumer_settings(
        bootstrap_servers,
        topic,
        breaker=CircuitBreakerConfig(failure_threshold=2, recovery_timeout_s=0.3),
    )
    state = ConsumerState.for_settings(config)
    transitions: list[tuple[CircuitState, CircuitState]] = []
    state.breaker.add_listener(lambda _name, old, new: transitions.append((old, new)))
    actor = KafkaConsumerActor(config, handler, state=state)
    async with running(actor):
        await wait_until(lambda: fully_paused(actor) and "handler" in actor.stats.pause_reasons)
        dependency_up = True
        await wait_until(lambda: len(handled) >= 10)
        await wait_until(lambda: not actor.stats.paused)
    assert handled == list(range(10))
    assert transitions[0] == (CircuitState.CLOSED, CircuitState.OPEN)
    assert (CircuitState.OPEN, CircuitState.HALF_OPEN) in transitions
    assert transitions[-1] == (CircuitState.HALF_OPEN, CircuitState.CLOSED)
    assert actor.stats.pause_reasons == frozenset()
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 10}


async def test_a_breaker_inside_the_handler_pauses_until_its_retry_after(
    bootstrap_servers: str,
) -> None:
    """When a breaker the handler calls through refuses, the consumer pauses for that
    breaker's retry-after instead of spinning on the record, then carries on in order."""
    topic = unique_name("inner")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"%d" % i) for i in range(5)])
    downstream = CircuitBreaker("onelake", CircuitBreakerConfig(1, recovery_timeout_s=0.4))
    down_until = anyio.current_time() + 1.5
    calls: list[float] = []
    handled: list[int] = []
    reasons_seen: set[str] = set()

    def upload(record: Record) -> None:
        calls.append(anyio.current_time())
        if anyio.current_time() < down_until:
            raise TransientError("storage unavailable")
        handled.append(record.offset)

    async def handler(record: Record) -> None:
        downstream.call(upload, record)

    config = consumer_settings(
        bootstrap_servers, topic, breaker=CircuitBreakerConfig(failure_threshold=100)
    )
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        with anyio.fail_after(10):
            while len(handled) < 5:
                reasons_seen |= actor.stats.pause_reasons
                await anyio.sleep(POLL_INTERVAL)
    assert handled == list(range(5))
    assert reasons_seen == {"onelake"}
    assert len(calls) <= 1 + 1.5 / 0.4 + 5


async def test_pause_and_resume_commands_are_idempotent(bootstrap_servers: str) -> None:
    """PausePartitions stops fetching (twice is like once), a resume for another reason
    changes nothing, and the matching ResumePartitions carries on where it stopped."""
    topic = unique_name("commands")
    await create_topics(bootstrap_servers, [topic])
    handled: list[int] = []
    send, receive = anyio.create_memory_object_stream[PartitionCommand](8)
    config = consumer_settings(bootstrap_servers, topic)
    actor = KafkaConsumerActor(config, lambda r: handled.append(r.offset), commands=receive)
    async with running(actor):
        await produce(bootstrap_servers, topic, [(None, b"before")] * 5)
        await wait_until(lambda: len(handled) == 5)
        await send.send(PausePartitions("onelake"))
        await send.send(PausePartitions("onelake"))
        await wait_until(lambda: fully_paused(actor))
        await produce(bootstrap_servers, topic, [(None, b"during")] * 5)
        await send.send(ResumePartitions("kusto"))
        await anyio.sleep(1.0)
        assert len(handled) == 5
        assert actor.stats.pause_reasons == frozenset({"onelake"})
        await send.send(ResumePartitions("onelake"))
        await wait_until(lambda: len(handled) == 10)
    assert handled == list(range(10))


async def test_a_pause_survives_a_rebalance(bootstrap_servers: str) -> None:
    """aiokafka forgets pauses when partitions are reassigned; the actor pauses what it is
    given while a pause reason is held, so a new member joining does not resume it."""
    topic = unique_name("rebalance")
    await create_topics(bootstrap_servers, [topic], partitions=2)
    send, receive = anyio.create_memory_object_stream[PartitionCommand](8)
    config = consumer_settings(bootstrap_servers, topic)
    paused_handled: list[Record] = []
    other_handled: list[Record] = []
    paused = KafkaConsumerActor(config, paused_handled.append, commands=receive)
    other = KafkaConsumerActor(config, other_handled.append)
    async with running(paused):
        await wait_until(lambda: len(paused.stats.assigned) == 2)
        await send.send(PausePartitions("onelake"))
        await wait_until(lambda: fully_paused(paused))
        async with running(other):
            await wait_until(lambda: len(paused.stats.assigned) == 1 and fully_paused(paused))
            await wait_until(lambda: len(other.stats.assigned) == 1)
            await produce(bootstrap_servers, topic, [(b"k%d" % i, b"v") for i in range(20)])
            await wait_until(lambda: len(other_handled) + len(paused_handled) > 0)
            await anyio.sleep(0.5)
            assert paused_handled == []
            await send.send(ResumePartitions("onelake"))
            await wait_until(lambda: len(other_handled) + len(paused_handled) == 20)
    (paused_partition,) = {record.partition for record in paused_handled}
    assert all(record.partition != paused_partition for record in other_handled)


@pytest.mark.parametrize("kind", ["async", "sync in thread"])
async def test_a_rebalance_mid_batch_waits_only_for_the_record_in_hand(
    bootstrap_servers: str, kind: str
) -> None:
    """When a second member joins while the first is inside a batch of slow records, the
    revocation waits for the record in hand only (not the batch), commits what was
    handled, and the new owners start right after it: nothing is handled twice."""
    topic = unique_name("midbatch")
    await create_topics(bootstrap_servers, [topic], partitions=2)
    for partition in (0, 1):
        records = [(None, b"%d" % i) for i in range(20)]
        await produce(bootstrap_servers, topic, records, partition=partition)
    handled: list[tuple[int, int]] = []

    async def slow_async(record: Record) -> None:
        await anyio.sleep(0.5)
        handled.append((record.partition, record.offset))

    def slow_sync(record: Record) -> None:
        time.sleep(0.5)
        handled.append((record.partition, record.offset))

    handler = slow_async if kind == "async" else slow_sync
    config = consumer_settings(bootstrap_servers, topic)
    first, second = KafkaConsumerActor(config, handler), KafkaConsumerActor(config, handler)
    async with running(first):
        await wait_until(lambda: len(handled) >= 1)
        async with running(second):
            joined_at = anyio.current_time()
            await wait_until(lambda: len(second.stats.assigned) == 1)
            rebalance_took = anyio.current_time() - joined_at
    assert rebalance_took < 4.0  # a whole batch (20 records of 0.5 s) would take 10 s
    assert len(set(handled)) == len(handled)
    ends = {p: len([o for q, o in handled if q == p]) for p in (0, 1)}
    assert sorted(handled) == [(p, o) for p in (0, 1) for o in range(ends[p])]
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 2) == {
        p: end or None for p, end in ends.items()
    }


async def test_poison_storm_escalates_after_committing_what_was_dead_lettered(
    bootstrap_servers: str,
) -> None:
    """When most of the latest records were dead-lettered the actor raises PermanentError
    naming the evidence; the records already in the dead-letter topic are committed."""
    topic = unique_name("poison")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    await produce(bootstrap_servers, topic, [(None, b"%d" % i) for i in range(30)])

    def broken_handler(record: Record) -> None:
        raise ValueError("schema mismatch")

    config = consumer_settings(
        bootstrap_servers,
        topic,
        poison=PoisonGuardSettings(window=10, max_share=0.5, min_sample=5),
    )
    with (
        anyio.fail_after(15),
        pytest.raises(PermanentError, match="poison storm: 5 of last 5 records dead-lettered"),
    ):
        await KafkaConsumerActor(config, broken_handler).run()
    assert len(await read_topic(bootstrap_servers, f"{topic}.dlq", expected=5)) == 5
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 5}


async def test_spent_retries_raise_a_transient_error_with_the_cause(bootstrap_servers: str) -> None:
    """A record that keeps failing transiently is retried in place, then the actor raises
    TransientError caused by the handler's error; the offset stays on that record."""
    topic = unique_name("spent")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"%d" % i) for i in range(6)])

    def handler(record: Record) -> None:
        if record.offset == 3:
            raise TimeoutError("downstream timed out")

    config = consumer_settings(
        bootstrap_servers, topic, breaker=CircuitBreakerConfig(failure_threshold=100)
    )
    actor = KafkaConsumerActor(config, handler)
    with anyio.fail_after(15), pytest.raises(TransientError, match=r"\[0\]@3") as raised:
        await actor.run()
    assert isinstance(raised.value.__cause__, TimeoutError)
    assert (actor.stats.failed, actor.stats.retried, actor.stats.handled) == (3, 2, 3)
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 3}


async def test_auth_failure_without_a_token_refresher_ends_the_actor(
    bootstrap_servers: str,
) -> None:
    """With no token refresher to ask, an AUTH failure is not retried in place: the actor
    exits with that very error, for the supervisor to refresh and restart."""
    topic = unique_name("noauth")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"x")])
    expired = AuthError("token expired")

    def handler(record: Record) -> None:
        raise expired

    actor = KafkaConsumerActor(consumer_settings(bootstrap_servers, topic), handler)
    with anyio.fail_after(15), pytest.raises(AuthError) as raised:
        await actor.run()
    assert raised.value is expired
    assert (actor.stats.failed, actor.stats.retried) == (1, 0)


async def test_stall_watchdog_gives_up_on_a_broker_that_vanished(
    own_kafka: ApacheKafkaBroker,
) -> None:
    """When the broker disappears while records are still to be read, nothing arrives for
    stall_timeout_s and the actor raises TransientError('consumer stalled') so it is
    restarted; a slow handler meanwhile is not taken for a stall."""
    broker = own_kafka
    topic = unique_name("stall")
    await create_topics(broker.bootstrap_servers, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for _ in range(30):  # one batch per record: one record per fetch below
            await (await producer.send(topic, b"x" * 2000))
    finally:
        await producer.stop()

    async def slow_handler(record: Record) -> None:
        if record.offset == 0:
            await anyio.sleep(1.5)  # slower than the stall timeout: not a stall
            broker.kill()

    config = consumer_settings(
        broker.bootstrap_servers,
        topic,
        stall_timeout_s=1.0,
        max_poll_records=1,
        fetch_max_bytes=1024,
        max_partition_fetch_bytes=1024,
        request_timeout_ms=1500,
        shutdown_timeout_s=2.0,
        dead_letter_topic=None,
    )
    actor = KafkaConsumerActor(config, slow_handler)
    with anyio.fail_after(15), pytest.raises(TransientError, match="consumer stalled"):
        await actor.run()
    assert actor.stats.handled == 1
    assert sum(actor.stats.lag.values()) > 0
