"""Each record's log lines carry its own coordinates and its trace id as correlation id."""

from __future__ import annotations

import pytest
from consumer_testing import consumer_settings, running, wait_until

from actors.consumer import KafkaConsumerActor, Record
from core.logging import get_correlation_id, get_log_context
from supervisor.testing import create_topics, produce, unique_name

pytestmark = pytest.mark.anyio


async def test_a_handler_logs_under_its_records_offset_and_trace_id(
    bootstrap_servers: str,
) -> None:
    """Inside the handler, with records running concurrently, the log context names the
    record being handled and the correlation id is its trace id; outside, neither leaks."""
    topic = unique_name("log-context")
    await create_topics(bootstrap_servers, [topic])
    records = [(f"k{n}".encode(), b"v", [("trace_id", f"t-{n}".encode())]) for n in range(20)]
    await produce(bootstrap_servers, topic, records)
    seen: list[tuple[int, str | None, object]] = []

    async def handle(record: Record) -> None:
        seen.append((record.offset, get_correlation_id(), get_log_context().get("offset")))

    settings = consumer_settings(bootstrap_servers, topic, ordering="key", max_in_flight=8)
    actor = KafkaConsumerActor(settings, handle)
    async with running(actor):
        await wait_until(lambda: len(seen) == len(records), 30)
    assert sorted(seen, key=lambda entry: entry[0]) == [
        (n, f"t-{n}", n) for n in range(len(records))
    ]
    assert get_correlation_id() is None


async def test_a_before_commit_hook_logs_under_the_commit_stage(bootstrap_servers: str) -> None:
    """A handler's before_commit runs inside the commit's stage context (`stage: commit`)."""
    topic = unique_name("log-stage")
    await create_topics(bootstrap_servers, [topic])
    await produce(bootstrap_servers, topic, [(None, b"v")])
    stages: list[object] = []

    async def handle(record: Record) -> None:
        """Nothing to do per record."""

    async def before_commit() -> None:
        stages.append(get_log_context().get("stage"))

    handle.before_commit = before_commit  # type: ignore[attr-defined]
    actor = KafkaConsumerActor(consumer_settings(bootstrap_servers, topic), handle)
    async with running(actor):
        await wait_until(lambda: bool(stages), 30)
    assert set(stages) == {"commit"}
