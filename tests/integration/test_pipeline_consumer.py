"""The Kafka consumer actor under supervisor.Supervisor against a real broker: crashes are
restarted from the last commit without losing a record, and a poison storm escalates."""

from __future__ import annotations

import random
from collections.abc import Callable

import anyio
import pytest
from consumer_testing import consumer_settings, wait_until

from actors.consumer import (
    ConsumerSettings,
    ConsumerState,
    KafkaConsumerActor,
    PoisonGuardSettings,
    Record,
    RetryBudgetSettings,
)
from core.errors import PermanentError, TransientError
from core.resilience.circuit_breaker import CircuitBreakerConfig
from core.types import ErrorCategory
from supervisor import Backoff, ChildSpec, EscalationError, Supervisor
from supervisor.testing import committed_offsets, create_topics, produce, unique_name

pytestmark = pytest.mark.anyio

CHILD = "kafka_consumer"
STAYS_CLOSED = CircuitBreakerConfig(failure_threshold=1000)
"""A handler breaker that never opens: these tests count restarts, not breaker pauses."""


def supervise(
    config: ConsumerSettings, handler: Callable[[Record], object], state: ConsumerState
) -> Supervisor:
    """A root supervisor restarting one consumer actor; `state` outlives the restarts."""
    spec = ChildSpec(
        CHILD,
        factory=lambda: KafkaConsumerActor(config, handler, state=state),
        shutdown_timeout=10.0,
    )
    return Supervisor(
        [spec], max_restarts=5, period=60.0, backoff=Backoff(base=0.05, max=0.2, jitter=False)
    )


async def test_random_transient_failures_lose_nothing(bootstrap_servers: str) -> None:
    """With the handler failing transiently at random points (mostly healed by in-place
    retries, twice beyond them so the actor crashes and is restarted), every record is
    handled at least once and the committed offsets reach the end of every partition."""
    topic = unique_name("flaky")
    await create_topics(bootstrap_servers, [topic], partitions=2)
    count = 400
    await produce(bootstrap_servers, topic, [(b"k%d" % i, b"v%d" % i) for i in range(count)])
    rng = random.Random(7)
    failures = {i: rng.choice([1, 1, 2]) for i in rng.sample(range(count), 40)}
    failures.update(dict.fromkeys(rng.sample(sorted(set(range(count)) - set(failures)), 2), 3))
    succeeded: set[bytes] = set()
    ends: dict[int, int] = {}

    def handler(record: Record) -> None:
        value = record.value or b""
        left = failures.get(int(value[1:]), 0)
        if left:
            failures[int(value[1:])] = left - 1
            raise TransientError(f"downstream hiccup on {value!r}")
        succeeded.add(value)
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)

    generous_budget = RetryBudgetSettings(ratio=1.0, min_retries_per_window=1000)
    config = consumer_settings(
        bootstrap_servers, topic, breaker=STAYS_CLOSED, retry_budget=generous_budget
    )
    root = supervise(config, handler, ConsumerState.for_settings(config))
    async with anyio.create_task_group() as tasks:
        await tasks.start(root.run)
        await wait_until(lambda: len(succeeded) == count, seconds=15.0)
        root.stop()
    assert succeeded == {b"v%d" % i for i in range(count)}
    assert root.stats().children[CHILD].restarts == 2
    assert sum(ends.values()) == count
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 2) == ends


async def test_crash_mid_batch_restarts_from_the_last_commit(bootstrap_servers: str) -> None:
    """A record whose handler keeps raising an unknown error crashes the actor after its
    retries; the supervisor restarts it, delivery resumes at that record (the last
    commit), and in the end every record was handled exactly once."""
    topic = unique_name("crash")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"%d" % i) for i in range(50)])
    handled: list[tuple[int, int]] = []
    first_deliveries: set[int] = set()

    config = consumer_settings(bootstrap_servers, topic, breaker=STAYS_CLOSED, max_poll_records=50)
    state = ConsumerState.for_settings(config)

    def handler(record: Record) -> None:
        if record.offset == 20 and state.stats.starts == 1:
            first_deliveries.add(record.offset)
            raise RuntimeError("handler bug triggered by this record's first delivery")
        handled.append((state.stats.starts, record.offset))

    root = supervise(config, handler, state)
    async with anyio.create_task_group() as tasks:
        await tasks.start(root.run)
        await wait_until(lambda: len(handled) == 50, seconds=15.0)
        root.stop()
    assert first_deliveries == {20}
    assert [offset for _, offset in handled] == list(range(50))
    second_start = [offset for incarnation, offset in handled if incarnation == 2]
    assert second_start[0] == 20
    assert root.stats().children[CHILD].exits[ErrorCategory.TRANSIENT.value] == 1
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 50}


async def test_poison_storm_escalates_at_once(bootstrap_servers: str) -> None:
    """A handler that rejects everything as PERMANENT trips the poison guard; the
    supervisor escalates at once instead of restarting, naming the consumer and the cause."""
    topic = unique_name("storm")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    await produce(bootstrap_servers, topic, [(None, b"%d" % i) for i in range(40)])

    def handler(record: Record) -> None:
        raise PermanentError("every record is rejected")

    config = consumer_settings(
        bootstrap_servers,
        topic,
        breaker=STAYS_CLOSED,
        poison=PoisonGuardSettings(window=20, min_sample=10),
    )
    root = supervise(config, handler, ConsumerState.for_settings(config))
    with anyio.fail_after(15), pytest.raises(EscalationError) as raised:
        await root.run()
    escalation = raised.value
    assert (escalation.child, escalation.category) == (CHILD, ErrorCategory.PERMANENT)
    assert "poison storm: 10 of last 10 records dead-lettered" in str(escalation)
    assert root.stats().children[CHILD].restarts == 0
