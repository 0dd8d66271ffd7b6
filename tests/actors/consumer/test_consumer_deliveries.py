"""The pending deliveries' commit gate: a mark never covers a delivery that failed or
has not settled, whatever the offsets, outcomes and the order deliveries settle in.

The deliveries are real asyncio futures, as aiokafka's producer returns them; what
settles them (the broker's answer) is played by the test.
"""

from __future__ import annotations

import asyncio
import random

import anyio
import anyio.lowlevel
import pytest
from aiokafka.errors import KafkaTimeoutError
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.deliveries import PendingDeliveries
from core.errors import PipelineError
from core.types import ErrorCategory

PARTITION = ("orders", 0)

schedules = st.lists(
    st.tuples(st.integers(0, 40), st.booleans()), max_size=25, unique_by=lambda d: d[0]
)
"""Each delivery: its record's offset, and whether the broker acknowledges it."""


@given(schedule=schedules, mark=st.integers(0, 45), seed=st.integers())
def test_a_mark_waits_for_the_deliveries_below_it_and_stops_at_the_first_failed(
    schedule: list[tuple[int, bool]], mark: int, seed: int
) -> None:
    """For any deliveries settling in any order while a commit waits: the mark comes back
    only once every delivery below it settled, lowered to the lowest failed offset below
    it; every failure is reported once, and only unsettled deliveries stay held."""

    async def scenario() -> None:
        failures: list[BaseException] = []
        deliveries = PendingDeliveries(failures.append)
        loop = asyncio.get_running_loop()
        futures = []
        for offset, acknowledged in schedule:
            future: asyncio.Future[None] = loop.create_future()
            deliveries.add(PARTITION, offset, future, "orders.retry.1s")
            futures.append((offset, acknowledged, future))
        order = futures[:]
        random.Random(seed).shuffle(order)

        async def broker() -> None:
            for _, acknowledged, future in order:
                await anyio.lowlevel.checkpoint()
                if acknowledged:
                    future.set_result(None)
                else:
                    future.set_exception(KafkaTimeoutError())

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(broker)
            got = await deliveries.acknowledged_mark(PARTITION, mark)
            assert all(f.done() for offset, _, f in futures if offset < mark)
        failed_below = [offset for offset, ok, _ in futures if offset < mark and not ok]
        assert got == min([mark, *failed_below])
        await anyio.lowlevel.checkpoint()  # the last done-callbacks
        assert len(failures) == sum(not ok for _, ok, _ in futures)
        assert len(deliveries) == 0

    anyio.run(scenario)


@pytest.mark.anyio
async def test_a_failed_delivery_is_reported_naming_its_record_with_its_category() -> None:
    """The exit error names the record and the target topic, keeps the delivery error as
    its cause and its category (a timeout is TRANSIENT)."""
    failures: list[BaseException] = []
    deliveries = PendingDeliveries(failures.append)
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    deliveries.add(PARTITION, 7, future, "orders.retry.1s")
    future.set_exception(KafkaTimeoutError())
    assert await deliveries.acknowledged_mark(PARTITION, 9) == 7
    [error] = failures
    assert isinstance(error, PipelineError)
    assert error.category is ErrorCategory.TRANSIENT
    assert isinstance(error.__cause__, KafkaTimeoutError)
    assert "orders[0]@7" in str(error)
    assert "'orders.retry.1s'" in str(error)


@pytest.mark.anyio
async def test_a_forgotten_partition_holds_nothing_back_and_reports_nothing() -> None:
    """Deliveries of a partition that was revoked are forgotten: their later failure is
    neither reported nor held against the partition's next assignment."""
    failures: list[BaseException] = []
    deliveries = PendingDeliveries(failures.append)
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    deliveries.add(PARTITION, 3, future, "orders.retry.1s")
    deliveries.forget(PARTITION)
    future.set_exception(KafkaTimeoutError())
    await anyio.lowlevel.checkpoint()
    assert failures == []
    assert len(deliveries) == 0
    assert await deliveries.acknowledged_mark(PARTITION, 10) == 10
