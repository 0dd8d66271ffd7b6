"""The embedded broker behaves like the Kafka the rest of the suite relies on."""

from __future__ import annotations

import pytest

from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name
from supervisor.testing.embedded_broker import EmbeddedBroker, free_port, wait_for_port

pytestmark = pytest.mark.anyio


async def test_records_produced_are_read_back_with_headers(bootstrap_servers: str) -> None:
    """Every produced record, with key, value and headers, is read back from the topic."""
    topic = unique_name("smoke")
    await create_topics(bootstrap_servers, [topic], partitions=2)
    records = [(f"k{i}".encode(), f"v{i}".encode(), [("h", str(i).encode())]) for i in range(20)]
    await produce(bootstrap_servers, topic, records)
    found = await read_topic(bootstrap_servers, topic, expected=20)
    assert sorted(r.value or b"" for r in found) == sorted(v for _, v, _ in records)
    assert all(r.headers == (("h", (r.value or b"")[1:]),) for r in found)


async def test_a_group_without_commits_reports_none(bootstrap_servers: str) -> None:
    """A consumer group that never committed has no committed offset on any partition."""
    topic = unique_name("uncommitted")
    await create_topics(bootstrap_servers, [topic], partitions=2)
    offsets = await committed_offsets(bootstrap_servers, unique_name("group"), topic, 2)
    assert offsets == {0: None, 1: None}


def test_broker_restarts_on_the_same_port() -> None:
    """A stopped broker starts again on the port it had, so clients can reconnect."""
    broker = EmbeddedBroker().start()
    try:
        port = broker.port
        broker.kill()
        assert not broker.running
        broker.start()
        wait_for_port(port, timeout=5)
        assert broker.running
        assert broker.port == port
    finally:
        broker.stop()


def test_waiting_for_a_port_nobody_opens_times_out() -> None:
    """Waiting for a port that never opens raises TimeoutError instead of hanging."""
    with pytest.raises(TimeoutError):
        wait_for_port(free_port(), timeout=0.3)
