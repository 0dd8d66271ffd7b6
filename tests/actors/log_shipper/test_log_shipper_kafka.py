"""KafkaSink against a real broker: records arrive keyed by logger; outages are classified."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from actors.log_shipper import (
    ChannelHandler,
    FormattedRecord,
    KafkaSink,
    LogBuffer,
    LogShipperActor,
    LogSinkError,
    SinkRetryPolicy,
)
from core.types import ErrorCategory
from supervisor.testing import create_topics, read_topic, unique_name
from supervisor.testing.apache_kafka import ApacheKafkaBroker

pytestmark = [pytest.mark.anyio, pytest.mark.broker]


@pytest.fixture
def app_loggers() -> Iterator[list[logging.Logger]]:
    """Two non-propagating loggers, as two actors would have, cleaned of handlers afterwards."""
    loggers = [logging.getLogger(f"tests.kafka_sink.{name}") for name in ("consumer", "refresher")]
    for log in loggers:
        log.propagate = False
        log.setLevel(logging.INFO)
    yield loggers
    for log in loggers:
        for handler in list(log.handlers):
            log.removeHandler(handler)


async def test_records_arrive_as_json_values_keyed_by_logger_in_order(
    bootstrap_servers: str, app_loggers: list[logging.Logger]
) -> None:
    """Logged records reach the topic once each: value = the JSON line, key = the logger's name."""
    topic = unique_name("logs")
    await create_topics(bootstrap_servers, [topic])
    buffer = LogBuffer(1_000)
    handler = ChannelHandler(buffer)
    for log in app_loggers:
        log.addHandler(handler)
    sink = KafkaSink(topic, bootstrap_servers=bootstrap_servers)
    shipper = LogShipperActor(buffer, [sink], batch_size=25, flush_interval=0.05)
    async with anyio.create_task_group() as tasks:
        await tasks.start(shipper.run)
        for number in range(60):
            app_loggers[number % 2].info("event %d", number)
        shipper.stop()
    consumed = await read_topic(bootstrap_servers, topic, expected=60)
    assert [json.loads(record.value or b"")["message"] for record in consumed] == [
        f"event {number}" for number in range(60)
    ]
    assert [record.key for record in consumed] == [
        app_loggers[number % 2].name.encode() for number in range(60)
    ]
    assert shipper.statistics().shipped == 60


async def test_broker_outage_is_transient_and_the_batch_ships_once_it_is_back(
    tmp_path: Path,
) -> None:
    """With the broker down the shipper raises TRANSIENT, keeps the batch, and ships it later."""
    broker = ApacheKafkaBroker(directory=tmp_path / "kafka")
    buffer = LogBuffer(100)
    records = [FormattedRecord("tests.outage", json.dumps({"n": n})) for n in range(5)]
    for record in records:
        buffer.put(record)
    sink = KafkaSink("logs-outage", bootstrap_servers=broker.bootstrap_servers, send_timeout=2.0)
    retry = SinkRetryPolicy(attempts_per_run=2, max_attempts=10, backoff=0.05)
    with pytest.raises(LogSinkError) as raised:
        await LogShipperActor(buffer, [sink], retry=retry).flush()
    assert raised.value.category is ErrorCategory.TRANSIENT
    assert buffer.statistics().queued == len(records)

    await anyio.to_thread.run_sync(broker.start)
    try:
        await create_topics(broker.bootstrap_servers, ["logs-outage"])
        await LogShipperActor(buffer, [sink], retry=retry).flush()
        await sink.aclose()
        consumed = await read_topic(broker.bootstrap_servers, "logs-outage", expected=5)
    finally:
        await anyio.to_thread.run_sync(broker.close)
    assert [record.value for record in consumed] == [record.line.encode() for record in records]
    assert buffer.statistics().shipped == len(records)


async def test_record_over_max_request_size_is_skipped_and_counted(bootstrap_servers: str) -> None:
    """One line too large for the producer is skipped (counted); the rest of its batch ships."""
    topic = unique_name("logs-oversized")
    await create_topics(bootstrap_servers, [topic])
    sink = KafkaSink(
        topic, bootstrap_servers=bootstrap_servers, producer_settings={"max_request_size": 2048}
    )
    batch = [
        FormattedRecord("small", "before"),
        FormattedRecord("huge", "x" * 4096),
        FormattedRecord("small", "after"),
    ]
    try:
        await sink.write(batch)
    finally:
        await sink.aclose()
    consumed = await read_topic(bootstrap_servers, topic, expected=2)
    assert [record.value for record in consumed] == [b"before", b"after"]
    assert sink.oversized == 1
