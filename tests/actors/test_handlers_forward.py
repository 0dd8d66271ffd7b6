"""The `forward:TOPIC` handler against a real broker: acknowledged copies, failures classified."""

from __future__ import annotations

import pytest

from actors.handlers import ForwardHandler, build_handler
from actors.messages import Record
from core.errors import classify_exception
from core.types import ErrorCategory
from supervisor.embedded_broker import free_port
from supervisor.testing import create_topics, read_topic, unique_name

pytestmark = pytest.mark.anyio


async def test_forwarded_records_keep_key_value_and_headers(bootstrap_servers: str) -> None:
    """Each record is in the target topic once the handler returned, bytes and headers intact."""
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
    finally:
        await handler.aclose()
    found = await read_topic(bootstrap_servers, target, expected=len(sent))
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
