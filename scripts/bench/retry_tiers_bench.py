"""Retry tiers: what records that fail and go to a tier cost the records that do not.

One embedded Tansu broker (or KAFKA_BOOTSTRAP_SERVERS) and one topic of 1 KB records in
4 partitions with 1,000 distinct keys, produced once. The handler awaits 10 ms (an
I/O-bound downstream) with ordering "key" and 256 in flight, retry tiers on with one
1 s tier, failures sent to it at once (`after_in_place_attempts = false`: an in-place
retry would hold the key's lane, which is what the tiers avoid). The cases, alternating
round by round, each a fresh consumer group with a fresh tier topic:

* no failures: every record succeeds;
* 10% fail once: every tenth record raises TransientError at its first handling, is
  produced to the tier (acknowledged before its offset is committed) and handled from
  there once due.

Both cases run twice: with 256 in flight, where this process's one thread is the limit
(about 17,000 records/s of the 25,600/s the handler's latency allows), so what a
failure costs the others is its CPU time; and with 64 in flight (6,400/s at most), where
the process has CPU to spare, so what is left is whether a failing record holds
anything up (an in-place retry would hold its key's lane for its backoff).

Measured: the other 90%'s records/s (and this process's CPU time per record of them),
from the first record handled to the last of them, in both cases; the target is at most
10% slower with the failures, judged on the median of the rounds' ratios (each round
runs both cases back to back; the command line asks for nine rounds, since single
rounds on a machine shared with other work scatter by 0.2x either way). Each failing run
also waits for every failed record to come back from the tier and succeed (reported, not
timed). The handler's breaker threshold is raised (scheduled failures are not an outage;
ten in a row would otherwise open it now and then at this rate).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Final

import anyio

from actors.consumer import KafkaConsumerActor
from actors.consumer.retry_tiers.settings import RetryTierSettings
from actors.messages import Record
from core.errors import TransientError
from core.resilience.circuit_config import CircuitBreakerConfig
from scripts.bench.concurrency_bench import KEYS, fill_keyed_topic
from scripts.bench.pipeline_bench import PARTITIONS, RECORD_BYTES, actor_settings, broker
from scripts.bench.report import Section, TargetCheck, ratio
from scripts.bench.timing import rounds_in_rotation
from scripts.profile_consumer import Progress
from supervisor.testing import create_topics, unique_name

__all__ = ["run"]

LATENCY_S: Final = 0.010
IN_FLIGHT: Final = 256
SPARE_IN_FLIGHT: Final = 64
FAILING_EVERY: Final = 10
TIER_DELAY_S: Final = 1
CLEAN: Final = "no failures"
FAILING: Final = "10% fail once, 1 s tier"
SPARE_CLEAN: Final = f"no failures, {SPARE_IN_FLIGHT} in flight"
SPARE_FAILING: Final = f"10% fail once, 1 s tier, {SPARE_IN_FLIGHT} in flight"
CASES: Final[dict[str, tuple[int, bool]]] = {
    CLEAN: (IN_FLIGHT, False),
    FAILING: (IN_FLIGHT, True),
    SPARE_CLEAN: (SPARE_IN_FLIGHT, False),
    SPARE_FAILING: (SPARE_IN_FLIGHT, True),
}
"""Each case: records in flight, and whether every tenth record fails once."""
PAIRS: Final = ((CLEAN, FAILING), (SPARE_CLEAN, SPARE_FAILING))
MAX_SLOWDOWN: Final = 0.10
RETURN_TIMEOUT_S: Final = 30.0
FETCH_MAX_WAIT_MS: Final = 20
"""A fetch that finds no new records in some partitions waits this long on the broker
(500 ms by default): at 10,000 records a run lasts about a second, and one or two such
waits more or less made runs of one case differ by 2x, whatever the failures."""


class Counts:
    """The failed records that came back from the tier and succeeded."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.returned = 0
        self.all_back = anyio.Event()

    def note(self) -> None:
        self.returned += 1
        if self.returned == self.expected:
            self.all_back.set()


def _index(record: Record) -> int:
    trace = record.header("trace_id") or b"bench-0"
    return int(trace.removeprefix(b"bench-"))


def handler(
    progress: Progress, back: Counts, *, failing: bool
) -> Callable[[Record], Awaitable[None]]:
    """The 10 ms handler: notes the 90% in `progress`; with `failing`, every tenth record
    fails its first handling and is noted in `back` when it succeeds from the tier."""

    async def handle(record: Record) -> None:
        await anyio.sleep(LATENCY_S)
        if _index(record) % FAILING_EVERY:
            progress.note()
        elif record.attempt:
            back.note()
        elif failing:
            raise TransientError("downstream busy")

    return handle


async def _one_run(
    bootstrap: str, topic: str, records: int, *, in_flight: int, failing: bool
) -> tuple[Progress, Counts]:
    pattern = "{topic}.retry." + unique_name("run") + ".{delay}"
    tiers = RetryTierSettings(
        delays_s=(TIER_DELAY_S,), topic_pattern=pattern, after_in_place_attempts=False
    )
    await create_topics(bootstrap, [tiers.topic(topic, 0)], partitions=PARTITIONS)
    failed = records // FAILING_EVERY + (records % FAILING_EVERY > 0)
    progress, back = Progress(records - failed), Counts(failed if failing else 0)
    settings = actor_settings(
        bootstrap,
        topic,
        ordering="key",
        max_in_flight=in_flight,
        retry_tiers=tiers,
        breaker=CircuitBreakerConfig(failure_threshold=10_000),
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    actor = KafkaConsumerActor(settings, handler(progress, back, failing=failing))
    async with anyio.create_task_group() as group:
        await group.start(actor.run)
        with anyio.fail_after(RETURN_TIMEOUT_S + 300):
            await progress.done.wait()
            if failing:
                with anyio.fail_after(RETURN_TIMEOUT_S):
                    await back.all_back.wait()
        actor.stop()
    return progress, back


async def _measure(records: int, repeats: int) -> tuple[dict[str, list[Progress]], list[int]]:
    runs: dict[str, list[Progress]] = {name: [] for name in CASES}
    returned: list[int] = []
    with broker() as bootstrap:
        topic = unique_name("bench-tiers")
        await fill_keyed_topic(bootstrap, topic, records)
        await create_topics(bootstrap, [f"{topic}.dlq"], partitions=PARTITIONS)
        for _, name in rounds_in_rotation(list(runs), repeats):
            in_flight, failing = CASES[name]
            progress, back = await _one_run(
                bootstrap, topic, records, in_flight=in_flight, failing=failing
            )
            runs[name].append(progress)
            if failing:
                returned.append(back.returned)
    return runs, returned


def run(records: int, repeats: int) -> list[Section]:
    """`repeats` rounds of both cases over one keyed topic of `records`."""
    started = time.perf_counter()
    runs, returned = anyio.run(_measure, records, repeats)
    median = {
        n: statistics.median(p.records_per_second() for p in done) for n, done in runs.items()
    }
    # Each round runs a pair's cases back to back: their ratio, round by round, is what the
    # machine's other load disturbs least (it drifts between rounds more than within one).
    shares = {
        failing: [
            bad.records_per_second() / good.records_per_second()
            for good, bad in zip(runs[clean], runs[failing], strict=True)
        ]
        for clean, failing in PAIRS
    }
    share = {failing: statistics.median(of_pair) for failing, of_pair in shares.items()}
    clean_of = {name: pair[0] for pair in PAIRS for name in pair}
    cpu = {n: statistics.median(p.cpu_us_per_record() for p in done) for n, done in runs.items()}
    rows = [
        [
            name,
            f"{min(p.records_per_second() for p in done):,.0f}",
            f"{median[name]:,.0f}",
            ratio(median[name] / median[clean_of[name]]),
            f"{cpu[name]:,.0f}",
        ]
        for name, done in runs.items()
    ]
    failed = records // FAILING_EVERY + (records % FAILING_EVERY > 0)
    checks = [
        TargetCheck.judged(
            what="retry tiers: 10% fail once (1 s tier), the other 90%, "
            + (
                f"{IN_FLIGHT} in flight (CPU-bound)"
                if failing == FAILING
                else f"{SPARE_IN_FLIGHT} in flight (CPU to spare)"
            ),
            ours=f"{median[failing]:,.0f} records/s (median of the rounds' ratios: "
            f"{ratio(share[failing])} no failures)",
            target=f">= {1 - MAX_SLOWDOWN:.1f}x the run without failures",
            met=share[failing] >= 1 - MAX_SLOWDOWN,
            best_peer=f"no failures {median[clean]:,.0f} records/s",
        )
        for clean, failing in PAIRS
    ]
    return [
        Section(
            key="pipeline-retry-tiers",
            title="Retry tiers: the cost of failing records to the others",
            columns=[
                "case",
                "min records/s (the 90%)",
                "median records/s",
                "vs no failures",
                "median CPU µs/record",
            ],
            rows=rows,
            checks=checks,
            notes=[
                f"{records:,} records of {RECORD_BYTES} B in {PARTITIONS} partitions with "
                f"{KEYS:,} keys; async handler awaiting {LATENCY_S * 1000:.0f} ms, ordering "
                f"key, {IN_FLIGHT} in flight (this process's CPU is the limit) or "
                f"{SPARE_IN_FLIGHT} (CPU to spare); {repeats} rounds of each case, "
                "alternating; vs no failures: against the same in flight without failures.",
                f"records/s counts the {records - failed:,} records that never fail, from the "
                "first handled to the last of them; every failing run also saw its "
                f"{failed:,} failed records succeed from the tier ({min(returned):,} at least) "
                f"within {RETURN_TIMEOUT_S:.0f} s; {time.perf_counter() - started:.0f} s in all.",
                "the rounds' ratios ranged "
                + "; ".join(
                    f"{ratio(min(of_pair))} to {ratio(max(of_pair))} ({CASES[name][0]} in flight)"
                    for name, of_pair in shares.items()
                )
                + ".",
                "CPU µs/record: this process's CPU time over the same span per record of the "
                "90% (the failed records' produce and return included; the broker's not).",
            ],
        )
    ]
