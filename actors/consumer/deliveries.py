"""Produces handed to a producer on behalf of consumed records, until acknowledged.

A record sent on to a retry tier is finished (its offset may be committed) once the
copy is handed to the producer, without waiting for the broker there: a worker that
awaited every acknowledgement would pay one produce request per record, and the
producer batches the copies instead when nobody waits. What keeps at-least-once is the
commit: before a partition's offset is committed, the deliveries of the records below
that offset are awaited (`acknowledged_mark`, from actors.consumer.partitions, as the
handler's `before_commit` is), and the commit stops at the first record whose delivery
failed. So a commit never covers a copy the broker does not hold; the record at that
offset, and everything after it, is delivered again.

A failed delivery also makes the consumer exit (`on_failure`, with an error naming the
record and the target topic, of the delivery error's category): the record cannot be
committed past, and handling on would only pile up work that is delivered again.

Memory: a delivery is dropped from here once acknowledged (its done-callback), so only
unacknowledged ones are held, and the producer bounds those (aiokafka lets one batch
per target partition fill, up to actors.consumer.client_config.PRODUCER_BATCH_BYTES,
while one is in flight, and `send` waits beyond that). A
failed delivery leaves one offset per partition. The deliveries of a partition that
was revoked are forgotten with it: its next owner starts from the last commit, which
no unacknowledged delivery was covered by.

`delivery_failure` says why a settled delivery failed; the `forward:` sink reads its
deliveries by it too (actors.sinks).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from core.errors import PipelineError, TransientError, classify_exception
from core.logging.error_text import error_text

__all__ = ["PendingDeliveries", "delivery_failure"]

Partition = tuple[str, int]
"""A consumed partition: (topic, partition)."""


def delivery_failure(delivery: asyncio.Future[Any], topic: str) -> BaseException | None:
    """Why a settled `delivery` to `topic` failed, None if it was acknowledged."""
    if delivery.cancelled():  # the producer was stopped under it
        return TransientError(f"a delivery to {topic!r} was cancelled")
    return delivery.exception()


class PendingDeliveries:
    """The unacknowledged produces of the owned partitions' records (module docstring)."""

    def __init__(self, on_failure: Callable[[BaseException], None]) -> None:
        self._on_failure = on_failure
        self._waiting: dict[Partition, dict[asyncio.Future[Any], int]] = {}
        """Per consumed partition: each unacknowledged delivery and its record's offset."""
        self._failed: dict[Partition, int] = {}
        """Per consumed partition: the lowest offset whose delivery failed."""

    def __len__(self) -> int:
        """How many deliveries are not acknowledged yet (failed ones excluded)."""
        return sum(map(len, self._waiting.values()))

    def add(
        self, partition: Partition, offset: int, delivery: asyncio.Future[Any], to: str
    ) -> None:
        """Note that the record at `offset` of `partition` was produced to `to`, not yet
        acknowledged (`delivery`: the producer's future); call it before booking the record."""
        waiting = self._waiting.get(partition)
        if waiting is None:
            waiting = self._waiting[partition] = {}
        waiting[delivery] = offset
        delivery.add_done_callback(functools.partial(self._settled, partition, to))

    async def acknowledged_mark(self, partition: Partition, mark: int) -> int:
        """`mark`, the offset about to be committed for `partition`, once every delivery
        of a record below it settled: lowered to the first such record whose delivery
        failed. Cancelled (the commit's deadline), it changes nothing."""
        waiting = self._waiting.get(partition)
        if waiting:
            below = [delivery for delivery, offset in waiting.items() if offset < mark]
            if below:
                await asyncio.wait(below)
                for delivery in below:  # their callbacks may not have run yet
                    offset = waiting.get(delivery)
                    if offset is not None and (delivery.cancelled() or delivery.exception()):
                        self._note_failed(partition, offset)
        failed = self._failed.get(partition)
        return mark if failed is None else min(mark, failed)

    def forget(self, partition: Partition) -> None:
        """Drop what is known of `partition` (revoked, or tracked afresh)."""
        self._waiting.pop(partition, None)
        self._failed.pop(partition, None)

    def _settled(self, partition: Partition, to: str, delivery: asyncio.Future[Any]) -> None:
        error = delivery_failure(delivery, to)  # read even when forgotten: asyncio warns else
        waiting = self._waiting.get(partition)
        offset = waiting.pop(delivery, None) if waiting is not None else None
        if offset is None or error is None:  # forgotten with its partition, or acknowledged
            return
        self._note_failed(partition, offset)
        topic, number = partition
        exit_error = PipelineError(
            f"the copy of {topic}[{number}]@{offset} produced to {to!r} was not "
            f"acknowledged: {type(error).__name__}: {error_text(error)}; nothing is "
            "committed from that record on (it is delivered again)",
            category=classify_exception(error),
            context={"topic": topic, "partition": number, "offset": offset, "to": to},
        )
        exit_error.__cause__ = error
        self._on_failure(exit_error)

    def _note_failed(self, partition: Partition, offset: int) -> None:
        failed = self._failed.get(partition)
        self._failed[partition] = offset if failed is None else min(failed, offset)
