"""Concurrent handling: the dispatcher's lanes against the bound of the handler's latency.

One embedded Tansu broker (or KAFKA_BOOTSTRAP_SERVERS) and topics of 1 KB records in
4 partitions with 1,000 distinct keys, produced once; every run consumes its topic from
the start as a fresh group. The cases, alternating round by round, in one run:

* the hand-written aiokafka loop (`pipeline_bench.consume_with_loop`): the baseline;
* ours, no-op per-record handler, defaults (one record in flight): no regression
  against the loop (it was 0.73x before the dispatcher);
* ours, no-op batch handler (batches of one partition, partitions concurrently): at
  least the loop's records/s;
* ours, async handler awaiting 10 ms, ordering "key", max_in_flight 256: at least
  10,000 records/s; the bound is 256 / 10 ms = 25,600 records/s;
* ours, sync handler sleeping 10 ms, ordering "key", 32 worker threads: at least
  2,500 records/s (the bound is 3,200/s).

records/s is counted from the first record handled to the last, so the group's join
(the broker's business, the same for all) is left out. The no-op cases (the loop, the
per-record and the batch handler) read a topic of `throughput_records` (the pipeline
benchmark's count), the latency-bound ones a topic of `records`: a no-op run over
50,000 records lasts under half a second, so its first fetches and a batch's last
`batch_max_wait_ms` weighed a quarter of it, while the latency-bound cases would take
minutes per round over the longer topic.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import anyio

from actors.consumer.batches import batch_handler
from actors.messages import Record
from scripts.bench.pipeline_bench import (
    PARTITIONS,
    RECORD_BYTES,
    actor_settings,
    broker,
    consume_with_actor,
    consume_with_loop,
    trace_id,
)
from scripts.bench.report import Section, TargetCheck, ratio
from scripts.bench.timing import rounds_in_rotation
from scripts.profile_consumer import Progress
from supervisor.testing import create_topics, produce, unique_name

__all__ = ["run"]

KEYS: Final = 1000
LATENCY_S: Final = 0.010
ASYNC_IN_FLIGHT: Final = 256
THREADS: Final = 32
LOOP: Final = "hand-written aiokafka loop"
NOOP: Final = "ours: no-op per record, defaults"
BATCH: Final = "ours: no-op batch handler"
ASYNC_10MS: Final = f"ours: async 10 ms, key, {ASYNC_IN_FLIGHT} in flight"
SYNC_10MS: Final = f"ours: sync 10 ms, key, {THREADS} threads"
NOOP_BASELINE_RATIO: Final = 0.73

Case = Callable[[str, str, Progress], Awaitable[None]]


async def fill_keyed_topic(bootstrap: str, topic: str, records: int, *, first: int = 0) -> None:
    """Create `topic` if needed and append `records` 1 KB records over `KEYS` keys, each
    with a unique trace id (numbered from `first`)."""
    await create_topics(bootstrap, [topic], partitions=PARTITIONS)
    value = bytes(range(256)) * (RECORD_BYTES // 256)
    await produce(
        bootstrap,
        topic,
        (
            (b"key-%04d" % (index % KEYS), value, [("trace_id", trace_id(index))])
            for index in range(first, first + records)
        ),
    )


async def _noop(bootstrap: str, topic: str, progress: Progress) -> None:
    await consume_with_actor(actor_settings(bootstrap, topic), progress)


async def _batches(bootstrap: str, topic: str, progress: Progress) -> None:
    @batch_handler
    async def handle(records: Sequence[Record]) -> None:
        for _ in records:
            progress.note()

    settings = actor_settings(bootstrap, topic, max_in_flight=PARTITIONS)
    await consume_with_actor(settings, progress, handle)


async def _async_10ms(bootstrap: str, topic: str, progress: Progress) -> None:
    async def handle(_record: Record) -> None:
        await anyio.sleep(LATENCY_S)
        progress.note()

    settings = actor_settings(bootstrap, topic, ordering="key", max_in_flight=ASYNC_IN_FLIGHT)
    await consume_with_actor(settings, progress, handle)


async def _sync_10ms(bootstrap: str, topic: str, progress: Progress) -> None:
    def handle(_record: Record) -> None:
        time.sleep(LATENCY_S)
        progress.note()

    settings = actor_settings(bootstrap, topic, ordering="key", max_in_flight=THREADS)
    await consume_with_actor(settings, progress, handle)


async def _loop(bootstrap: str, topic: str, progress: Progress) -> None:
    await consume_with_loop(bootstrap, topic, progress)


CASES: Final[dict[str, Case]] = {
    LOOP: _loop,
    NOOP: _noop,
    BATCH: _batches,
    ASYNC_10MS: _async_10ms,
    SYNC_10MS: _sync_10ms,
}
NO_OP_CASES: Final = frozenset({LOOP, NOOP, BATCH})
"""The cases that read the longer topic (see the module docstring)."""


async def _measure(
    records: int, throughput_records: int, repeats: int
) -> dict[str, list[Progress]]:
    runs: dict[str, list[Progress]] = {name: [] for name in CASES}
    with broker() as bootstrap:
        latency_topic = unique_name("bench-concurrency")
        throughput_topic = unique_name("bench-concurrency-no-op")
        await fill_keyed_topic(bootstrap, latency_topic, records)
        await fill_keyed_topic(bootstrap, throughput_topic, throughput_records)
        for _, name in rounds_in_rotation(list(CASES), repeats):
            if name in NO_OP_CASES:
                topic, count = throughput_topic, throughput_records
            else:
                topic, count = latency_topic, records
            progress = Progress(count)
            await CASES[name](bootstrap, topic, progress)
            runs[name].append(progress)
    return runs


def run(records: int, repeats: int, throughput_records: int) -> list[Section]:
    """`repeats` rounds of every case: the latency-bound ones over a keyed topic of
    `records`, the no-op ones over one of `throughput_records`."""
    runs = anyio.run(_measure, records, throughput_records, repeats)
    median = {
        n: statistics.median(p.records_per_second() for p in done) for n, done in runs.items()
    }
    loop = median[LOOP]
    async_bound = ASYNC_IN_FLIGHT / LATENCY_S
    sync_bound = THREADS / LATENCY_S
    rows = [
        [
            name,
            "baseline" if name == LOOP else "ours",
            f"{min(p.records_per_second() for p in done):,.0f}",
            f"{median[name]:,.0f}",
            ratio(median[name] / loop),
            ratio(median[name] / async_bound)
            if name == ASYNC_10MS
            else ratio(median[name] / sync_bound)
            if name == SYNC_10MS
            else "",
        ]
        for name, done in runs.items()
    ]
    checks = [
        TargetCheck.judged(
            what="no-op per-record handler, defaults",
            ours=f"{median[NOOP]:,.0f} records/s ({ratio(median[NOOP] / loop)} the loop)",
            target=f">= {NOOP_BASELINE_RATIO}x the loop (no regression)",
            met=median[NOOP] >= NOOP_BASELINE_RATIO * loop,
            best_peer=f"hand-written loop {loop:,.0f} records/s",
        ),
        TargetCheck.judged(
            what="no-op batch handler",
            ours=f"{median[BATCH]:,.0f} records/s ({ratio(median[BATCH] / loop)} the loop)",
            target=">= 1.0x the hand-written per-record loop",
            met=median[BATCH] >= loop,
            best_peer=f"hand-written loop {loop:,.0f} records/s",
        ),
        TargetCheck.judged(
            what="async handler awaiting 10 ms, key order, 256 in flight",
            ours=f"{median[ASYNC_10MS]:,.0f} records/s "
            f"({ratio(median[ASYNC_10MS] / async_bound)} the bound)",
            target=">= 10,000 records/s",
            met=median[ASYNC_10MS] >= 10_000,
            best_peer=f"bound {async_bound:,.0f} records/s",
        ),
        TargetCheck.judged(
            what="sync handler sleeping 10 ms, key order, 32 threads",
            ours=f"{median[SYNC_10MS]:,.0f} records/s "
            f"({ratio(median[SYNC_10MS] / sync_bound)} the bound)",
            target=">= 2,500 records/s",
            met=median[SYNC_10MS] >= 2_500,
            best_peer=f"bound {sync_bound:,.0f} records/s",
        ),
    ]
    return [
        Section(
            key="pipeline-concurrency",
            title="Concurrent handling: lanes, batches and the latency bound",
            columns=["case", "kind", "min records/s", "median records/s", "vs loop", "vs bound"],
            rows=rows,
            checks=checks,
            notes=[
                f"Records of {RECORD_BYTES} B in {PARTITIONS} partitions with {KEYS:,} keys, "
                f"produced once: {throughput_records:,} for the no-op cases, {records:,} for "
                f"the latency-bound ones; {repeats} rounds of every case, alternating, each a "
                "fresh consumer group.",
                "vs bound: the median over max_in_flight / 10 ms, what the handler's latency "
                "allows at most.",
            ],
        )
    ]
