"""DeadLetterWriter against the broker: a copy refused as too large is stored cut to fit."""

from __future__ import annotations

import hashlib

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from actors.consumer.dead_letter import DeadLetterWriter
from actors.messages import Record
from core.types import ErrorCategory
from supervisor.testing import create_topics, read_topic, unique_name

pytestmark = pytest.mark.anyio

LIMIT = 100_000
"""The writer's max_request_size here: small, so the test needs no megabyte records."""


async def test_a_record_whose_copy_is_over_the_request_limit_is_stored_cut_with_its_digest(
    bootstrap_servers: str,
) -> None:
    """A record just under the limit, whose dlq.* headers push it over, is stored cut."""
    topic = unique_name("dlq-cut")
    await create_topics(bootstrap_servers, [topic])
    headers = (("trace_id", b"t-1"),)
    overhead = DefaultRecordBatchBuilder.estimate_size_in_bytes(b"key", b"", list(headers))
    value = bytes(range(256)) * ((LIMIT - overhead - 200) // 256)
    poison = Record("orders", 0, 17, b"key", value, headers, None)
    writer = DeadLetterWriter({"bootstrap_servers": bootstrap_servers, "max_request_size": LIMIT})
    await writer.start()
    try:
        await writer.write(topic, poison, ValueError("x" * 500), ErrorCategory.PERMANENT)
    finally:
        await writer.stop()
    [letter] = await read_topic(bootstrap_servers, topic, expected=1)
    stored = dict(letter.headers)
    assert letter.key == b"key"
    assert letter.value is not None
    assert value.startswith(letter.value)
    assert len(letter.value) < len(value)
    assert stored["dlq.value.cut"] == f"{len(letter.value)} of {len(value)} bytes kept".encode()
    assert stored["dlq.value.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert stored["dlq.source.offset"] == b"17"
    assert stored["trace_id"] == b"t-1"


async def test_a_copy_within_the_limit_is_stored_whole(bootstrap_servers: str) -> None:
    """Nothing is cut from a record whose copy fits."""
    topic = unique_name("dlq-whole")
    await create_topics(bootstrap_servers, [topic])
    poison = Record("orders", 1, 3, None, b"v" * 1000, (), None)
    writer = DeadLetterWriter({"bootstrap_servers": bootstrap_servers, "max_request_size": LIMIT})
    await writer.start()
    try:
        await writer.write(topic, poison, ValueError("bad"), ErrorCategory.PERMANENT)
    finally:
        await writer.stop()
    [letter] = await read_topic(bootstrap_servers, topic, expected=1)
    assert letter.value == b"v" * 1000
    assert "dlq.value.cut" not in dict(letter.headers)
