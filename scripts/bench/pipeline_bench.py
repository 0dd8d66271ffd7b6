"""Pipeline throughput: the KafkaConsumerActor vs a hand-written aiokafka loop, same broker.

One embedded Tansu broker (or KAFKA_BOOTSTRAP_SERVERS) and one topic of 1 KB records,
produced once; every run consumes the whole topic from the start as a fresh consumer
group, so every run reads the same records. The runs alternate, ours then the loop.

* the loop: `getmany(max_records=1000)`, the handler awaited for each record, then
  `commit()` after each batch; auto-commit off. At-least-once, the plainest way.
* ours: `KafkaConsumerActor` with its defaults (dedup on, dead-letter topic, breaker,
  retries, commits of finished offsets every `commit_interval_s`) and the same batch
  size, `max_poll_records=1000`; run directly, as a supervisor would run it.

Both call the same no-op async handler, which notes when it saw the first and the last
record: records/s is the record count over that span, so the consumer group's join (a
broker matter, the same for both) is left out. Every record carries a unique `trace_id`
header, so our dedup window does its work on each record.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from typing import Any, Final

import anyio
from aiokafka import AIOKafkaConsumer

from actors.consumer import ConsumerSettings, Handler, KafkaConsumerActor
from scripts.bench.report import Section, TargetCheck, ratio
from scripts.bench.timing import rounds_in_rotation
from supervisor.testing import (
    EmbeddedBroker,
    create_topics,
    external_bootstrap,
    produce,
    unique_name,
)

__all__ = ["Progress", "broker", "consume_with_actor", "consume_with_loop", "fill_topic", "run"]

RECORD_BYTES: Final = 1024
PARTITIONS: Final = 4
BATCH: Final = 1000
TARGET_RATIO: Final = 0.9
RUN_TIMEOUT_S: Final = 300.0
OURS: Final = "ours: KafkaConsumerActor"
LOOP: Final = "hand-written aiokafka loop"


class Progress:
    """The no-op handler: counts records and notes when the first and the last arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first_at = self.last_at = 0.0
        self.first_cpu = self.last_cpu = 0.0
        self.done = anyio.Event()

    async def __call__(self, _record: object) -> None:
        """Handle one record: nothing to do but note it."""
        self.count += 1
        if self.count == 1:
            self.first_at, self.first_cpu = time.perf_counter(), time.process_time()
        if self.count == self.expected:
            self.last_at, self.last_cpu = time.perf_counter(), time.process_time()
            self.done.set()

    def records_per_second(self) -> float:
        """Records handled per second (wall clock) between the first and the last."""
        return self.count / (self.last_at - self.first_at)

    def cpu_us_per_record(self) -> float:
        """This process's CPU time per record over the same span (the broker's is not in it)."""
        return (self.last_cpu - self.first_cpu) / self.count * 1e6


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """Bootstrap servers: KAFKA_BOOTSTRAP_SERVERS, or an embedded broker started for this."""
    external = external_bootstrap()
    if external:
        yield external
        return
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap_servers


def trace_id(index: int) -> bytes:
    """The unique trace id of the `index`th record."""
    return f"bench-{index:012d}".encode()


async def fill_topic(bootstrap: str, topic: str, records: int, *, first: int = 0) -> None:
    """Create `topic` if needed and append `records` 1 KB records with unique trace ids."""
    await create_topics(bootstrap, [topic], partitions=PARTITIONS)
    value = bytes(range(256)) * (RECORD_BYTES // 256)
    await produce(
        bootstrap,
        topic,
        ((None, value, [("trace_id", trace_id(index))]) for index in range(first, first + records)),
    )


def actor_settings(bootstrap: str, topic: str, **overrides: Any) -> ConsumerSettings:
    """The actor's defaults, a fresh group, and the loop's batch size; the dead-letter
    producer is not idempotent, since the benchmarks' embedded Tansu cannot start one."""
    return ConsumerSettings(
        bootstrap_servers=bootstrap,
        topics=(topic,),
        group_id=unique_name("bench-actor"),
        max_poll_records=BATCH,
        idempotent_producer=False,
        **overrides,
    )


async def consume_with_actor(
    settings: ConsumerSettings, progress: Progress, handler: Handler | None = None
) -> None:
    """Run the actor until `progress` saw every record, then stop it (commit, leave);
    the handler is `progress` itself unless another one (that notes it) is given."""
    actor = KafkaConsumerActor(settings, handler or progress)
    async with anyio.create_task_group() as group:
        await group.start(actor.run)
        with anyio.fail_after(RUN_TIMEOUT_S):
            await progress.done.wait()
        actor.stop()


async def consume_with_loop(bootstrap: str, topic: str, progress: Progress) -> None:
    """The hand-written loop: fetch a batch, handle each record, commit the batch."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=unique_name("bench-loop"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        with anyio.fail_after(RUN_TIMEOUT_S):
            while progress.count < progress.expected:
                batch = await consumer.getmany(timeout_ms=200, max_records=BATCH)
                for messages in batch.values():
                    for message in messages:
                        await progress(message)
                if batch:
                    await consumer.commit()
    finally:
        await consumer.stop()


async def _measure(records: int, repeats: int) -> dict[str, list[Progress]]:
    runs: dict[str, list[Progress]] = {OURS: [], LOOP: []}
    with broker() as bootstrap:
        topic = unique_name("bench-pipeline")
        await fill_topic(bootstrap, topic, records)
        for _, name in rounds_in_rotation(list(runs), repeats):
            progress = Progress(records)
            if name == OURS:
                await consume_with_actor(actor_settings(bootstrap, topic), progress)
            else:
                await consume_with_loop(bootstrap, topic, progress)
            runs[name].append(progress)
    return runs


def run(records: int, repeats: int) -> list[Section]:
    """`repeats` runs each of ours and the loop, alternating, over one topic of `records`."""
    runs = anyio.run(_measure, records, repeats)
    rates = {name: [p.records_per_second() for p in done] for name, done in runs.items()}
    cpu = {name: [p.cpu_us_per_record() for p in done] for name, done in runs.items()}
    ours_median, loop_median = statistics.median(rates[OURS]), statistics.median(rates[LOOP])
    rows = [
        [
            name,
            "ours" if name == OURS else "baseline",
            f"{min(rates[name]):,.0f}",
            f"{statistics.median(rates[name]):,.0f}",
            f"{max(rates[name]):,.0f}",
            ratio(statistics.median(rates[name]) / loop_median),
            f"{min(cpu[name]):,.1f}",
        ]
        for name in runs
    ]
    check = TargetCheck.judged(
        what="pipeline throughput, 1 KB records, no-op handler, at-least-once commits",
        ours=f"{ours_median:,.0f} records/s ({ratio(ours_median / loop_median)} the loop)",
        target=f">= {TARGET_RATIO}x the loop",
        met=ours_median >= TARGET_RATIO * loop_median,
        best_peer=f"hand-written loop {loop_median:,.0f} records/s",
    )
    return [
        Section(
            key="pipeline-throughput",
            title="Pipeline throughput, 1 KB records, no-op handler, at-least-once commits",
            columns=[
                "consumer",
                "kind",
                "min records/s",
                "median records/s",
                "max records/s",
                "median vs loop",
                "min CPU µs/record",
            ],
            rows=rows,
            checks=[check],
            notes=[
                f"{records:,} records of {RECORD_BYTES} B in {PARTITIONS} partitions, produced "
                f"once; {repeats} runs of each, alternating, each a fresh consumer group.",
                "CPU µs/record: this process's CPU time from the first record to the last, "
                "over the records (aiokafka's fetching and decoding included, the broker's "
                "work not); less disturbed by other processes than records/s.",
                "Tansu keeps every record in memory (~1.8 KB of broker RSS per 1 KB record), "
                "hence the modest record count.",
            ],
        )
    ]
