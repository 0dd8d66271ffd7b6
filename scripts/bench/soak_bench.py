"""Memory soak: the consumer's RSS over many records with dedup on (opt-in: `--soak`).

Two modes, each its own benchmark:

* "soak": the KafkaConsumerActor with its defaults (one record in flight) and a no-op
  handler;
* "soak-key": ordering "key" with `KEY_IN_FLIGHT` records in flight over `KEYS` keys
  (concurrency_bench's topic shape), and a handler that yields to the event loop once,
  so records really overlap: what lanes, the in-flight trace ids and the out-of-order
  offset trackers hold must not grow with the records handled.

The topic is filled first (every record a unique `trace_id` header, so the dedup window
fills up and then evicts one id per record); then a fresh interpreter runs the actor
over the whole topic and samples its own RSS as it goes, so the producer's buffers are
not in the figures. That interpreter starts as `kafka-pipeline run` does, with glibc's
mmap threshold pinned (supervisor.pipeline.allocator): the figures are what the
pipeline's process gets. Without the pin, glibc carves the MB-sized fetch buffers out of
its heap once the first one was freed, and the heap grows in MB steps for millions of
records while the live objects stay flat (ordering "key": +2% to +13% over a million
records in repeated runs, and still stepping up at three million).

Growth is measured from the end of the warm-up (the first `WARMUP_SHARE` of the records:
with a million records and the default window of 100,000 ids, twice the window) to the
last record.

    python -m scripts.bench.soak_bench MODE BOOTSTRAP TOPIC RECORDS    # the consumer side
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Final, Literal

import anyio
import anyio.lowlevel

from actors.messages import Record
from scripts.bench.concurrency_bench import KEYS, fill_keyed_topic
from scripts.bench.machine import resident_kib
from scripts.bench.pipeline_bench import (
    Progress,
    actor_settings,
    broker,
    consume_with_actor,
    fill_topic,
)
from scripts.bench.report import Section, TargetCheck
from supervisor.pipeline.allocator import pin_mmap_threshold
from supervisor.testing import unique_name

__all__ = ["run"]

WARMUP_SHARE: Final = 0.2
SAMPLES: Final = 20
TARGET_GROWTH: Final = 0.10
PRODUCE_CHUNK: Final = 100_000
KEY_IN_FLIGHT: Final = 256

Mode = Literal["soak", "soak-key"]


class SampledProgress(Progress):
    """The no-op handler, also noting this process's RSS every `every` records."""

    def __init__(self, expected: int) -> None:
        super().__init__(expected)
        self.every = max(1, expected // SAMPLES)
        self.samples: list[tuple[int, int, int]] = [_sample(0)]

    async def __call__(self, record: object) -> None:
        """Note the record, and the RSS at every sampling point."""
        await super().__call__(record)
        if self.count % self.every == 0 or self.count == self.expected:
            self.samples.append(_sample(self.count))


def _sample(count: int) -> tuple[int, int, int]:
    """(records handled, RSS KiB, live pymalloc blocks): RSS that grows while the blocks
    stay flat is the allocator holding on to freed memory, not objects kept alive."""
    return count, resident_kib(), sys.getallocatedblocks()


async def _consume(mode: Mode, bootstrap: str, topic: str, records: int) -> SampledProgress:
    progress = SampledProgress(records)
    if mode == "soak":
        await consume_with_actor(actor_settings(bootstrap, topic), progress)
        return progress

    async def handle(record: Record) -> None:
        await anyio.lowlevel.checkpoint()
        await progress(record)

    settings = actor_settings(bootstrap, topic, ordering="key", max_in_flight=KEY_IN_FLIGHT)
    await consume_with_actor(settings, progress, handle)
    return progress


def consumer_main() -> None:
    """The consumer side: consume the topic, print the RSS samples and the rate as JSON."""
    pin_mmap_threshold()
    mode: Any = sys.argv[1]
    bootstrap, topic, records = sys.argv[2], sys.argv[3], int(sys.argv[4])
    progress = anyio.run(_consume, mode, bootstrap, topic, records)
    print(json.dumps({"samples": progress.samples, "rate": progress.records_per_second()}))


async def _fill(mode: Mode, bootstrap: str, topic: str, records: int) -> None:
    fill = fill_topic if mode == "soak" else fill_keyed_topic
    for first in range(0, records, PRODUCE_CHUNK):
        await fill(bootstrap, topic, min(PRODUCE_CHUNK, records - first), first=first)


def run(records: int, mode: Mode = "soak") -> list[Section]:
    """Fill a topic with `records` records, consume it in a fresh process in `mode`,
    report RSS."""
    with broker() as bootstrap:
        topic = unique_name(f"bench-{mode}")
        anyio.run(_fill, mode, bootstrap, topic, records)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "scripts.bench.soak_bench",
                mode,
                bootstrap,
                topic,
                str(records),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    result = json.loads(done.stdout)
    samples = [tuple(sample) for sample in result["samples"]]
    warm = next(sample for sample in samples if sample[0] >= WARMUP_SHARE * records)
    end = samples[-1]
    growth = (end[1] - warm[1]) / warm[1]
    rows = [
        [f"{count:,}", f"{rss:,}", f"{blocks:,}", "warm-up ends" if count == warm[0] else ""]
        for count, rss, blocks in samples
    ]
    described = (
        "dedup on"
        if mode == "soak"
        else f'ordering "key", {KEY_IN_FLIGHT} in flight, {KEYS:,} keys, dedup on'
    )
    check = TargetCheck.judged(
        what=f"memory: consumer RSS over {records:,} records, {described}",
        ours=f"{warm[1] / 1024:,.1f} -> {end[1] / 1024:,.1f} MiB ({growth:+.1%})",
        target=f"growth <= {TARGET_GROWTH:.0%} after warm-up",
        met=growth <= TARGET_GROWTH,
    )
    setup = (
        "KafkaConsumerActor with its defaults (dedup window of 100,000 ids), a no-op handler"
        if mode == "soak"
        else f'KafkaConsumerActor with ordering "key" and max_in_flight {KEY_IN_FLIGHT} '
        "(dedup window of 100,000 ids), a handler that yields to the event loop once"
    )
    return [
        Section(
            key=f"{mode}-memory",
            title=f"Memory: consumer RSS over {records:,} records, {described}",
            columns=["records handled", "RSS KiB", "live blocks", ""],
            rows=rows,
            checks=[check],
            notes=[
                f"{setup}, {records:,} records of 1 KB with unique trace ids, in a fresh "
                f"process; consumed at {result['rate']:,.0f} records/s.",
                f"Warm-up: the first {WARMUP_SHARE:.0%} of the records.",
                "Live blocks are the objects pymalloc holds (every Python object up to "
                "512 bytes: records, spans, ids). The process pins glibc's mmap threshold "
                "as kafka-pipeline run does, so freed MB-sized fetch buffers go back to the "
                "system; RSS still moves by a few MB with the fetch buffers alive at the "
                "sampling instant.",
            ],
        )
    ]


if __name__ == "__main__":
    consumer_main()
