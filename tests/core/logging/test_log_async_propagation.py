"""The logging context across asyncio tasks and worker threads, driven through anyio."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from log_capture import CapturedLog

from core.logging import (
    JSONFormatter,
    KafkaLogContext,
    LogContext,
    get_correlation_id,
    get_log_context,
    log_operation,
    set_correlation_id,
)

pytestmark = pytest.mark.anyio


async def test_child_tasks_inherit_the_context_of_the_task_that_started_them() -> None:
    """Tasks started in a task group see the parent's correlation id and fields."""
    seen: list[dict[str, object]] = []

    async def child() -> None:
        seen.append(get_log_context())

    set_correlation_id("parent")
    with LogContext(actor="consumer"):
        async with anyio.create_task_group() as group:
            group.start_soon(child)
            group.start_soon(child)
    assert seen == [{"correlation_id": "parent", "actor": "consumer"}] * 2


async def test_concurrent_tasks_each_keep_their_own_kafka_record() -> None:
    """Interleaved tasks handling different records log each line with its own offset."""
    log = CapturedLog(JSONFormatter())

    async def handle(offset: int) -> None:
        with KafkaLogContext("orders", 0, offset):
            for step in range(3):
                await anyio.lowlevel.checkpoint()
                log.logger.info("step %d", step)

    async with anyio.create_task_group() as group:
        for offset in (10, 11, 12):
            group.start_soon(handle, offset)
    lines = log.records()
    assert {line["offset"] for line in lines[:3]} == {10, 11, 12}
    by_offset: dict[int, int] = {}
    for line in lines:
        by_offset[line["offset"]] = by_offset.get(line["offset"], 0) + 1
    assert by_offset == {10: 3, 11: 3, 12: 3}


async def test_changes_made_in_a_child_task_do_not_reach_the_parent() -> None:
    """A correlation id or LogContext set in a child task stays in that task."""

    async def child() -> None:
        set_correlation_id("child")
        LogContext(leaked="no").__enter__()

    async with anyio.create_task_group() as group:
        group.start_soon(child)
    assert get_correlation_id() is None
    assert get_log_context() == {}


async def test_a_worker_thread_from_anyio_sees_the_callers_context() -> None:
    """anyio.to_thread.run_sync runs the function in a copy of the caller's context."""
    log = CapturedLog(JSONFormatter())
    set_correlation_id("threaded")
    with KafkaLogContext("orders", 2, 3):
        await anyio.to_thread.run_sync(log.logger.info, "from a thread")
    line = log.last()
    assert (line["correlation_id"], line["offset"]) == ("threaded", 3)


async def test_log_operation_reports_cancellation_of_an_awaiting_block() -> None:
    """A cancelled await inside log_operation ends it as "cancelled" and cancellation wins."""
    log = CapturedLog(JSONFormatter())
    with anyio.move_on_after(0.01) as scope:
        with log_operation(log.logger, "poll"):
            await anyio.sleep(10)
    assert scope.cancelled_caught
    end = log.last()
    assert (end["operation"], end["outcome"], end["error_type"]) == (
        "poll",
        "cancelled",
        "CancelledError",
    )
