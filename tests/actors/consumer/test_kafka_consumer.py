"""The Kafka consumer actor against a real broker: delivery, commits, dead letters, dedup, stop."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import replace
from typing import Any

import anyio
import orjson
import pytest
from consumer_testing import consumer_settings, running, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.consumer import (
    ConsumerState,
    DedupSettings,
    KafkaConsumerActor,
    PoisonGuardSettings,
    Record,
)
from actors.messages import RefreshRequest
from core.errors import AuthError, PermanentError
from core.logging import get_log_context
from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio


async def test_every_record_is_handled_once_in_order_and_committed(bootstrap_servers: str) -> None:
    """With nothing failing, each record is handled exactly once, in partition order,
    and the committed offsets reach the end of every partition."""
    topic = unique_name("orders")
    await create_topics(bootstrap_servers, [topic], partitions=3)
    count = 3000
    await produce(bootstrap_servers, topic, [(b"k%d" % i, b"v%d" % i) for i in range(count)])
    seen: dict[int, list[int]] = defaultdict(list)

    async def handler(record: Record) -> None:
        seen[record.partition].append(record.offset)

    config = consumer_settings(bootstrap_servers, topic)
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        await wait_until(lambda: sum(map(len, seen.values())) >= count)
    ends = {partition: len(offsets) for partition, offsets in seen.items()}
    assert all(offsets == list(range(len(offsets))) for offsets in seen.values())
    assert sum(ends.values()) == count
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 3) == ends
    stats = actor.stats.snapshot()
    assert (stats.consumed, stats.handled, stats.failed) == (count, count, 0)
    assert dict(stats.committed) == {(topic, p): end for p, end in ends.items()}


headers_strategy = st.lists(
    st.tuples(st.text(min_size=1, max_size=8), st.binary(max_size=16)), max_size=3
)
records_strategy = st.lists(
    st.tuples(
        st.none() | st.binary(max_size=32), st.none() | st.binary(max_size=64), headers_strategy
    ).filter(lambda record: record[0] is not None or record[1] is not None),
    min_size=1,
    max_size=30,
)
"""Records as aiokafka can produce them: a key or a value (or both), any headers."""


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=records_strategy)
def test_generated_records_reach_the_handler_unchanged(
    bootstrap_servers: str,
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> None:
    """Whatever keys, values and headers were produced, the handler receives exactly them,
    in order, and the committed offset is the end of the partition."""

    async def scenario() -> None:
        topic = unique_name("generated")
        await create_topics(bootstrap_servers, [topic])
        await produce(bootstrap_servers, topic, records)
        received: list[Record] = []
        config = consumer_settings(bootstrap_servers, topic, dedup=DedupSettings(enabled=False))
        async with running(KafkaConsumerActor(config, received.append)):
            await wait_until(lambda: len(received) >= len(records))
        assert [(r.key, r.value, list(r.headers)) for r in received] == records
        assert [r.offset for r in received] == list(range(len(records)))
        committed = await committed_offsets(bootstrap_servers, config.group_id, topic, 1)
        assert committed == {0: len(records)}

    anyio.run(scenario, backend="asyncio")


async def test_permanent_failures_are_dead_lettered_with_their_story(
    bootstrap_servers: str,
) -> None:
    """Records the handler rejects as PERMANENT land on `<topic>.dlq` with the original
    bytes and headers plus the failure headers, and the stream goes on past them."""
    topic = unique_name("payments")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    records = [
        (b"k%d" % i, b"bad" if i % 4 == 0 else b"ok", [("trace_id", b"t%d" % i)]) for i in range(40)
    ]
    await produce(bootstrap_servers, topic, records)
    handled: list[int] = []

    def handler(record: Record) -> None:
        if record.value == b"bad":
            raise PermanentError(f"cannot parse record {record.offset}; password=hunter2")
        handled.append(record.offset)

    config = consumer_settings(bootstrap_servers, topic, poison=PoisonGuardSettings(max_share=1.0))
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        await wait_until(lambda: actor.stats.handled + actor.stats.dead_lettered >= len(records))
    dead = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=10)
    assert sorted(int(r.key[1:]) for r in dead if r.key) == list(range(0, 40, 4))
    for letter in dead:
        headers = dict(letter.headers)
        offset = int(headers["dlq.source.offset"])
        assert letter.value == b"bad"
        assert letter.key == b"k%d" % offset
        assert headers["trace_id"] == b"t%d" % offset
        assert headers["dlq.source.topic"] == topic.encode()
        assert headers["dlq.source.partition"] == b"0"
        assert headers["dlq.error.category"] == b"permanent"
        assert headers["dlq.error.class"] == b"core.errors.exceptions.PermanentError"
        assert b"hunter2" not in headers["dlq.error.message"]
        assert headers["dlq.failed.at"].endswith(b"+00:00")
    assert handled == [i for i in range(40) if i % 4]
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 40}


async def test_permanent_failure_without_a_dead_letter_topic_stops_the_consumer(
    bootstrap_servers: str,
) -> None:
    """With dead-lettering off, a PERMANENT failure raises instead of dropping the record,
    and the offset stays on it."""
    topic = unique_name("nodlq")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"ok"), (None, b"bad"), (None, b"ok")])

    def handler(record: Record) -> None:
        if record.value == b"bad":
            raise ValueError("unparseable")

    config = consumer_settings(bootstrap_servers, topic, dead_letter_topic=None)
    with anyio.fail_after(15), pytest.raises(PermanentError, match="dead-lettering is off"):
        await KafkaConsumerActor(config, handler).run()
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 1}


async def test_replayed_trace_ids_are_skipped(bootstrap_servers: str) -> None:
    """A record whose trace id was already handled is skipped and counted, so a replay
    does not reach the handler twice."""
    topic = unique_name("replays")
    await create_topics(bootstrap_servers, [topic])
    ids = [f"trace-{i}" for i in range(20)]
    replayed = ids[:5] + ids[10:13]
    records = [(None, b"v", [("trace_id", i.encode())]) for i in ids + replayed]
    await produce(bootstrap_servers, topic, records)
    handled: Counter[str] = Counter()

    async def handler(record: Record) -> None:
        handled[(record.header("trace_id") or b"").decode()] += 1

    actor = KafkaConsumerActor(consumer_settings(bootstrap_servers, topic), handler)
    async with running(actor):
        await wait_until(lambda: actor.stats.handled + actor.stats.deduplicated >= len(records))
    assert handled == Counter(ids)
    assert actor.stats.deduplicated == len(replayed)


async def test_records_without_a_readable_trace_id_still_reach_the_handler(
    bootstrap_servers: str,
) -> None:
    """When dedup reads a JSON field, values that are not JSON objects are handled anyway
    and counted as undecodable; readable duplicates are still skipped."""
    topic = unique_name("json")
    await create_topics(bootstrap_servers, [topic])
    values = [
        orjson.dumps({"id": "a"}),
        b"\xff\xfe not utf-8",
        b"{broken json",
        orjson.dumps(["a", "list"]),
        orjson.dumps({"id": "a"}),
        orjson.dumps({"no_id": 1}),
    ]
    await produce(bootstrap_servers, topic, [(None, value) for value in values])
    handled: list[bytes | None] = []
    config = consumer_settings(
        bootstrap_servers, topic, dedup=DedupSettings(json_field="id"), dead_letter_topic=None
    )
    actor = KafkaConsumerActor(config, lambda record: handled.append(record.value))
    async with running(actor):
        await wait_until(lambda: actor.stats.handled + actor.stats.deduplicated >= len(values))
    assert handled == [values[0], values[1], values[2], values[3], values[5]]
    assert (actor.stats.dedup_undecodable, actor.stats.deduplicated) == (3, 1)


async def test_graceful_stop_finishes_the_record_in_hand_and_commits(
    bootstrap_servers: str,
) -> None:
    """stop() lets the record in hand finish, commits it, and the next member of the group
    continues right after it: nothing lost, nothing handled twice."""
    topic = unique_name("stop")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"%d" % i) for i in range(30)])
    handled: list[int] = []
    in_hand = anyio.Event()

    async def slow_handler(record: Record) -> None:
        if record.offset == 10:
            in_hand.set()
            await anyio.sleep(0.5)
        handled.append(record.offset)

    config = consumer_settings(bootstrap_servers, topic)
    first = KafkaConsumerActor(config, slow_handler)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tasks:
            await tasks.start(first.run)
            await in_hand.wait()
            first.stop()
    assert handled == list(range(11))
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 11}
    second = KafkaConsumerActor(config, slow_handler)
    async with running(second):
        await wait_until(lambda: len(handled) >= 30)
    assert handled == list(range(30))


@pytest.mark.parametrize("ending", ["stop", "cancel"])
async def test_a_handler_thread_ends_after_the_call_in_hand_not_the_batch(
    bootstrap_servers: str, ending: str
) -> None:
    """A plain-function handler runs a whole batch in one worker thread, yet a stop or a
    cancellation waits only for the call in hand; what was handled is committed."""
    topic = unique_name("thread-stop")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"%d" % i) for i in range(30)])
    handled: list[int] = []

    def slow_handler(record: Record) -> None:
        handled.append(record.offset)
        if record.offset == 10:
            time.sleep(0.5)

    config = consumer_settings(bootstrap_servers, topic)
    actor = KafkaConsumerActor(config, slow_handler)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tasks:
            await tasks.start(actor.run)
            await wait_until(lambda: 10 in handled)
            if ending == "stop":
                actor.stop()
            else:
                tasks.cancel_scope.cancel()
    assert handled == list(range(11))
    assert await committed_offsets(bootstrap_servers, config.group_id, topic, 1) == {0: 11}


async def test_sync_handler_runs_in_a_worker_thread_with_the_record_context(
    bootstrap_servers: str,
) -> None:
    """A synchronous handler runs off the event loop's thread and its logs carry the record's
    topic, partition and offset."""
    topic = unique_name("threads")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"x")] * 3)
    loop_thread = threading.get_ident()
    calls: list[tuple[int, Any]] = []

    def handler(record: Record) -> None:
        context = get_log_context()
        calls.append((threading.get_ident(), (context.get("topic"), context.get("offset"))))

    actor = KafkaConsumerActor(consumer_settings(bootstrap_servers, topic), handler)
    async with running(actor):
        await wait_until(lambda: len(calls) >= 3)
    assert all(thread != loop_thread for thread, _ in calls)
    assert [context for _, context in calls] == [(topic, 0), (topic, 1), (topic, 2)]


async def test_auth_failure_asks_the_token_refresher_then_retries(bootstrap_servers: str) -> None:
    """An AUTH failure sends a RefreshRequest for the configured scope, waits for it to be
    done, and retries the record, which then succeeds."""
    topic = unique_name("auth")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"x")])
    token = {"fresh": False}
    handled: list[int] = []

    async def handler(record: Record) -> None:
        if not token["fresh"]:
            raise AuthError("token expired")
        handled.append(record.offset)

    send, receive = anyio.create_memory_object_stream[RefreshRequest](4)
    asked: list[RefreshRequest] = []

    async def token_refresher() -> None:
        async for request in receive:
            asked.append(request)
            token["fresh"] = True
            request.done.set()

    config = consumer_settings(bootstrap_servers, topic, auth_scope="https://example/.default")
    actor = KafkaConsumerActor(config, handler, refresh_requests=send)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(token_refresher)
        async with running(actor):
            await wait_until(lambda: handled == [0])
        tasks.cancel_scope.cancel()
    assert [request.scope for request in asked] == ["https://example/.default"]
    assert (actor.stats.failed, actor.stats.retried) == (1, 1)


async def test_state_outlives_an_incarnation(bootstrap_servers: str) -> None:
    """A second actor built on the same ConsumerState continues its counters and its
    dedup window, as the incarnations of one supervised consumer do."""
    topic = unique_name("state")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"x", [("trace_id", b"same")])])
    config = consumer_settings(bootstrap_servers, topic)
    state = ConsumerState.for_settings(config)
    handled: list[int] = []
    first = KafkaConsumerActor(config, lambda record: handled.append(record.offset), state=state)
    async with running(first):
        await wait_until(lambda: state.stats.handled == 1)
    await produce(bootstrap_servers, topic, [(None, b"x", [("trace_id", b"same")])])
    rereading = replace(config, group_id=unique_name("group"))
    second = KafkaConsumerActor(rereading, lambda r: handled.append(r.offset), state=state)
    async with running(second):
        await wait_until(lambda: state.stats.deduplicated == 2)
    assert handled == [0]
    assert (state.stats.starts, state.stats.consumed) == (2, 3)
