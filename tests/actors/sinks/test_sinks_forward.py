"""The `forward:TOPIC` handler against a real broker: acknowledged copies, failures classified."""

from __future__ import annotations

import anyio
import pytest
from consumer_testing import consumer_settings, running, wait_until

from actors.consumer import KafkaConsumerActor
from actors.messages import Record
from actors.sinks import ForwardHandler, build_handler
from core.errors import classify_exception
from core.types import ErrorCategory
from supervisor.testing import create_topics, produce, read_topic, unique_name
from supervisor.testing.apache_kafka import ApacheKafkaBroker
from supervisor.testing.embedded_broker import free_port

pytestmark = pytest.mark.anyio


async def test_forwarded_records_keep_key_value_and_headers(bootstrap_servers: str) -> None:
    """Each record is in the target topic once `before_commit` returned, bytes and headers
    intact, in the order handed over."""
    target = unique_name("forwarded")
    await create_topics(bootstrap_servers, [target])
    handler = build_handler(
        f"forward:{target}", producer_settings={"bootstrap_servers": bootstrap_servers}
    )
    assert isinstance(handler, ForwardHandler)
    sent = [
        Record("source", 0, offset, f"k{offset}".encode(), bytes([offset, 255]), (("h", b"1"),))
        for offset in range(5)
    ]
    try:
        for record in sent:
            await handler(record)
        await handler.before_commit()
        found = await read_topic(bootstrap_servers, target, expected=len(sent))
    finally:
        await handler.aclose()
    assert [(r.key, r.value, r.headers) for r in found] == [
        (r.key, r.value, r.headers) for r in sent
    ]


async def test_an_unreachable_broker_is_a_transient_failure() -> None:
    """With nothing listening, forwarding fails with an error the taxonomy calls TRANSIENT."""
    handler = ForwardHandler(
        "copy", {"bootstrap_servers": f"127.0.0.1:{free_port()}", "request_timeout_ms": 500}
    )
    with pytest.raises(Exception) as caught:
        await handler(Record("source", 0, 0, None, b"v"))
    await handler.aclose()
    assert classify_exception(caught.value) is ErrorCategory.TRANSIENT


async def test_before_commit_with_nothing_handed_over_touches_no_broker() -> None:
    """Before any record there is nothing to wait for: no producer is started."""
    handler = ForwardHandler("copy", {"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    await handler.before_commit()
    await handler.aclose()
    assert repr(handler) == "ForwardHandler('copy')"


async def test_a_failed_delivery_holds_the_commit_back_and_is_sent_again(
    own_kafka: ApacheKafkaBroker,
) -> None:
    """A record whose delivery failed (the broker went away after the producer knew the
    topic) makes `before_commit` raise a TRANSIENT error; once the broker is back, the next
    successful `before_commit` has sent it again, so the target holds both records once
    (the broker kept its log across the crash)."""
    broker = own_kafka
    bootstrap = broker.bootstrap_servers
    target = unique_name("resent")
    await create_topics(bootstrap, [target], partitions=1)
    handler = ForwardHandler(target, {"bootstrap_servers": bootstrap, "request_timeout_ms": 1000})
    try:
        await handler(Record("source", 0, 0, b"k0", b"before"))
        await handler.before_commit()
        broker.kill()
        await handler(Record("source", 0, 1, b"k1", b"lost-unless-resent"))
        with pytest.raises(Exception) as caught:
            await handler.before_commit()
        assert classify_exception(caught.value) is ErrorCategory.TRANSIENT
        await anyio.to_thread.run_sync(broker.start)
        await _until_committable(handler, seconds=30)
        found = await read_topic(bootstrap, target, expected=2)
    finally:
        await handler.aclose()
    assert [(record.key, record.value) for record in found] == [
        (b"k0", b"before"),
        (b"k1", b"lost-unless-resent"),
    ]


async def _until_committable(handler: ForwardHandler, *, seconds: float) -> None:
    """Call `before_commit` as the consumer would, once per interval, until it succeeds;
    every failure on the way must be TRANSIENT (the consumer would escalate anything else)."""
    categories: list[ErrorCategory] = []
    with anyio.fail_after(seconds):
        while True:
            try:
                await handler.before_commit()
            except Exception as exc:
                categories.append(classify_exception(exc))
                await anyio.sleep(0.2)
            else:
                break
    assert set(categories) <= {ErrorCategory.TRANSIENT}


async def test_a_consumer_forwarding_commits_only_what_the_target_holds(
    bootstrap_servers: str,
) -> None:
    """Through the consumer actor, every commit comes after the acknowledgements of the
    records it covers: once all is committed, the target holds every record, in order."""
    source, target = unique_name("source"), unique_name("target")
    await create_topics(bootstrap_servers, [source, target], partitions=1)
    count = 2000
    await produce(bootstrap_servers, source, [(b"%d" % n, b"v%d" % n) for n in range(count)])
    handler = ForwardHandler(target, {"bootstrap_servers": bootstrap_servers})
    actor = KafkaConsumerActor(consumer_settings(bootstrap_servers, source), handler)
    try:
        async with running(actor):
            await wait_until(lambda: actor.stats.committed.get((source, 0)) == count)
            found = await read_topic(bootstrap_servers, target, expected=count)
    finally:
        await handler.aclose()
    assert [record.key for record in found] == [b"%d" % n for n in range(count)]
