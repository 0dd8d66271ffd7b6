"""The consumer actor with records in flight at once, against a real broker, failures
injected: every ordering, per-record and batch handlers.

Keyed records over three partitions; some fail PERMANENT (dead-lettered), some fail
TRANSIENT once (retried in place, in their lane). What must hold in every mode: each
good record is handled exactly once, each bad one is in the dead-letter topic, the
committed offsets reach the end of every partition, the order the mode promises is
kept (key: each key's records in offset order; partition: each partition's), and
records did run concurrently.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from consumer_testing import consumer_settings, running, wait_until

from actors.consumer import (
    KafkaConsumerActor,
    PoisonGuardSettings,
    Record,
    RetryBudgetSettings,
)
from actors.consumer.batches import BatchResult, batch_handler
from core.errors import PermanentError, TransientError
from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio

PARTITIONS = 3
RECORDS = 240
KEYS = 12


class Observed:
    """What the handlers saw: successful handlings in order, concurrency reached."""

    def __init__(self) -> None:
        self.handled: list[tuple[int, int, bytes]] = []
        self.failed_once: set[tuple[int, int]] = set()
        self.running = 0
        self.most_running = 0
        self.rng = random.Random(7)

    async def enter(self) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await anyio.sleep(self.rng.random() * 0.004)

    def verdict(self, record: Record) -> Exception | None:
        """PERMANENT for every 17th record, TRANSIENT once for every 5th, else None."""
        index = int(record.value or b"0")
        if index % 17 == 3:
            return PermanentError(f"bad record {index}")
        where = (record.partition, record.offset)
        if index % 5 == 1 and where not in self.failed_once:
            self.failed_once.add(where)
            return TransientError(f"flaky record {index}")
        return None


def per_record(observed: Observed) -> Any:
    async def handle(record: Record) -> None:
        await observed.enter()
        try:
            error = observed.verdict(record)
            if error is not None:
                raise error
            observed.handled.append((record.partition, record.offset, record.key or b""))
        finally:
            observed.running -= 1

    return handle


def batches(observed: Observed) -> Any:
    @batch_handler
    async def handle(records: Sequence[Record]) -> BatchResult | None:
        await observed.enter()
        try:
            verdicts = {record.offset: observed.verdict(record) for record in records}
            if any(isinstance(error, PermanentError) for error in verdicts.values()):
                for record in records:  # undo the TRANSIENT marks: this call made none
                    observed.failed_once.discard((record.partition, record.offset))
                raise PermanentError("a bad record spoils the batch")
            failed = {offset: error for offset, error in verdicts.items() if error is not None}
            for record in records:
                if record.offset not in failed:
                    observed.handled.append((record.partition, record.offset, record.key or b""))
            return BatchResult(failed) if failed else None
        finally:
            observed.running -= 1

    return handle


@pytest.mark.parametrize(
    ("ordering", "kind"),
    [("key", "record"), ("partition", "record"), ("none", "record"), ("partition", "batch")],
)
async def test_concurrent_modes_lose_nothing_and_keep_their_order(
    bootstrap_servers: str, ordering: str, kind: str
) -> None:
    """In every mode, with failures injected, each good record is handled once, each bad
    one dead-lettered, every partition committed to its end, the mode's order kept, and
    more than one record (or batch) was in the handler at once."""
    topic = unique_name(f"concurrent-{ordering}-{kind}")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    await produce(
        bootstrap_servers,
        topic,
        [(b"key-%d" % (i % KEYS), b"%d" % i) for i in range(RECORDS)],
    )
    observed = Observed()
    handler = per_record(observed) if kind == "record" else batches(observed)
    config = consumer_settings(
        bootstrap_servers,
        topic,
        ordering=ordering,
        max_in_flight=16,
        batch_max_records=10,
        batch_max_wait_ms=20,
        poison=PoisonGuardSettings(max_share=1.0),
        retry_budget=RetryBudgetSettings(ratio=1.0),  # a fifth fail once: not a budget test
    )
    actor = KafkaConsumerActor(config, handler)
    async with running(actor):
        await wait_until(
            lambda: actor.stats.handled + actor.stats.dead_lettered >= RECORDS, seconds=30
        )
    bad = [i for i in range(RECORDS) if i % 17 == 3]
    dead = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=len(bad))
    assert sorted(int(letter.value or b"") for letter in dead) == bad

    handled = observed.handled
    assert len(handled) == len(set(handled)) == RECORDS - len(bad)
    ends: dict[int, int] = defaultdict(int)
    by_lane: dict[Any, list[int]] = defaultdict(list)
    for partition, offset, key in handled:
        ends[partition] += 1
        if ordering == "key":
            by_lane[(partition, key)].append(offset)
        elif ordering == "partition" and kind == "record":
            by_lane[partition].append(offset)
    assert all(offsets == sorted(offsets) for offsets in by_lane.values())
    logs = await committed_offsets(bootstrap_servers, config.group_id, topic, PARTITIONS)
    assert sum(logs.values()) == RECORDS  # each partition committed to its end
    assert observed.most_running > 1


async def test_full_batches_of_different_partitions_run_at_once_by_default(
    bootstrap_servers: str,
) -> None:
    """With the automatic buffer bound, full batches (as long as a fetch) of different
    partitions are in a batch handler at the same time: the bound leaves room for a full
    batch per call in flight."""
    topic = unique_name("full-batches")
    await create_topics(bootstrap_servers, [topic], partitions=PARTITIONS)
    per_partition = RECORDS // PARTITIONS
    for partition in range(PARTITIONS):  # exactly a full batch's worth in each
        values = [(None, b"%d" % i) for i in range(per_partition)]
        await produce(bootstrap_servers, topic, values, partition=partition)
    full_inside: set[int] = set()
    together = anyio.Event()

    @batch_handler
    async def handle(records: Sequence[Record]) -> None:
        if len(records) < per_partition:
            return
        full_inside.add(records[0].partition)
        if len(full_inside) >= 2:
            together.set()
        with anyio.move_on_after(5):
            await together.wait()
        full_inside.discard(records[0].partition)

    config = consumer_settings(
        bootstrap_servers,
        topic,
        max_in_flight=PARTITIONS,
        max_poll_records=per_partition,
        batch_max_records=per_partition,
        batch_max_wait_ms=10_000,  # fetches of max_poll_records fill a batch in turns
    )
    actor = KafkaConsumerActor(config, handle)
    async with running(actor):
        with anyio.fail_after(30):
            await together.wait()
        await wait_until(lambda: actor.stats.handled >= RECORDS, seconds=30)
