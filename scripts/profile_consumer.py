"""Where the consumer actor's time goes: its throughput next to a hand-written loop, one run.

    .venv/bin/python scripts/profile_consumer.py [--records 100000] [--rounds 3]
    .venv/bin/python scripts/profile_consumer.py --case "actor, async, dedup on" --rounds 5
    .venv/bin/python scripts/profile_consumer.py --rounds 0 --profile "actor, async, dedup on"

One embedded Tansu broker (or KAFKA_BOOTSTRAP_SERVERS), one topic of 1 KB records with
unique `trace_id` headers, produced once. Every run reads the whole topic as a fresh
consumer group, in rounds that rotate the order of the cases, so each case sees the same
records and the same broker. Records/s is counted from the first record handled to the
last (the group join is a broker matter, the same for every case).

Cases: the hand-written aiokafka loop (`getmany(max_records=1000)`, each record awaited
by the handler, `commit()` per batch), and the actor with an async no-op handler (dedup
on and off), a sync no-op handler in a worker thread (the default) and on the loop.
`--profile CASE` runs that case once more under pyinstrument and prints where the time
went. `--costs` needs no broker: it prints what one record costs on the actor's fast
path, piece by piece (the Record, the log context, the breaker, the trace id and
dedup) and in total. This is a developer's tool; scripts/bench/ holds the benchmark
of record, whose broker, topic filling, hand-written loop and actor run it reuses.
"""

from __future__ import annotations

import argparse
import math
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import anyio
import anyio.from_thread
from aiokafka.structs import ConsumerRecord

from actors.consumer import (
    ConsumerSettings,
    ConsumerState,
    DedupSettings,
)
from actors.consumer.batches import BatchHandler, batch_handler
from actors.consumer.dedup import DedupWindow, TraceIdReader
from actors.consumer.deliveries import PendingDeliveries
from actors.consumer.dispatcher import Dispatcher
from actors.consumer.failures import FailurePath
from actors.consumer.handler_calls import Handler, HandlerRunner
from actors.consumer.handover import Handover, record_of
from actors.consumer.offsets import PartitionOffsets
from core.logging.kafka_context import KafkaLogContext
from core.resilience.circuit_breaker import CircuitBreaker
from scripts.bench import pipeline_bench
from scripts.bench.pipeline_bench import (
    BATCH,
    RECORD_BYTES,
    actor_settings,
    broker,
    consume_with_actor,
    consume_with_loop,
    fill_topic,
)
from supervisor.testing import unique_name


class Progress(pipeline_bench.Progress):
    """The benchmark's counter, which sync handlers also note from a worker thread."""

    def __init__(self, expected: int) -> None:
        super().__init__(expected)
        self._loop_thread = threading.get_ident()

    async def __call__(self, _record: object) -> None:
        """Note the record (the hand-written loop's handler)."""
        self.note()

    def note(self) -> None:
        """Count one record (from the loop or a worker thread: one call at a time)."""
        self.count += 1
        if self.count == 1:
            self.first_at, self.first_cpu = time.perf_counter(), time.process_time()
        if self.count == self.expected:
            self.last_at, self.last_cpu = time.perf_counter(), time.process_time()
            if threading.get_ident() == self._loop_thread:
                self.done.set()
            else:  # an anyio worker thread: the event belongs to the loop
                anyio.from_thread.run_sync(self.done.set)


def async_handler(progress: Progress) -> Callable[[object], Awaitable[None]]:
    """A no-op coroutine handler."""

    async def handle(_record: object) -> None:
        progress.note()

    return handle


def sync_handler(progress: Progress) -> Callable[[object], None]:
    """A no-op plain-function handler."""

    def handle(_record: object) -> None:
        progress.note()

    return handle


def batches_handler(progress: Progress) -> BatchHandler:
    """A no-op batch handler (batches of one partition, partitions concurrently)."""

    @batch_handler
    async def handle(records: Sequence[object]) -> None:
        for _ in records:
            progress.note()

    return handle


async def run_actor(
    bootstrap: str, topic: str, progress: Progress, handler: Handler, **overrides: Any
) -> None:
    """The benchmark's actor run (defaults, fresh group, the loop's batch size)."""
    settings = actor_settings(bootstrap, topic, **overrides)
    await consume_with_actor(settings, progress, handler)


Case = Callable[[str, str, Progress], Awaitable[None]]

LOOP: Final = "hand-written loop"
CASES: Final[dict[str, Case]] = {
    LOOP: consume_with_loop,
    "actor, async, dedup on": lambda b, t, p: run_actor(b, t, p, async_handler(p)),
    "actor, async, dedup off": lambda b, t, p: run_actor(
        b, t, p, async_handler(p), dedup=DedupSettings(enabled=False)
    ),
    "actor, sync in thread": lambda b, t, p: run_actor(b, t, p, sync_handler(p)),
    "actor, sync on loop": lambda b, t, p: run_actor(
        b, t, p, sync_handler(p), sync_handler_in_thread=False
    ),
    "actor, async batches": lambda b, t, p: run_actor(b, t, p, batches_handler(p), max_in_flight=4),
}


async def measure(
    bootstrap: str, topic: str, records: int, rounds: int, names: list[str]
) -> dict[str, list[Progress]]:
    """Each named case once per round, the order rotated each round."""
    runs: dict[str, list[Progress]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            progress = Progress(records)
            await CASES[name](bootstrap, topic, progress)
            runs[name].append(progress)
    return runs


async def profile(bootstrap: str, topic: str, records: int, name: str) -> None:
    """Run one case under pyinstrument and print its call tree."""
    from pyinstrument import Profiler

    progress = Progress(records)
    with Profiler(interval=0.0002, async_mode="enabled") as profiler:
        await CASES[name](bootstrap, topic, progress)
    print(f"\n{name}: {progress.records_per_second():,.0f} records/s under the profiler")
    print(profiler.output_text(unicode=True, show_all=False))


def report(runs: dict[str, list[Progress]]) -> None:
    """Median, min and max records/s with the median's ratio to the loop, and the median
    CPU time per record with what it adds to the loop's."""
    baseline = statistics.median(run.records_per_second() for run in runs[LOOP])
    baseline_cpu = statistics.median(run.cpu_us_per_record() for run in runs[LOOP])
    print(
        f"{'case':<26}{'median/s':>10}{'min/s':>10}{'max/s':>10}{'vs loop':>9}"
        f"{'CPU us/rec':>12}{'+ loop':>8}"
    )
    for name, done in runs.items():
        rates = [run.records_per_second() for run in done]
        median = statistics.median(rates)
        cpu = statistics.median(run.cpu_us_per_record() for run in done)
        print(
            f"{name:<26}{median:>10,.0f}{min(rates):>10,.0f}{max(rates):>10,.0f}"
            f"{median / baseline:>8.2f}x{cpu:>12.2f}{cpu - baseline_cpu:>8.2f}"
        )


def fetched(count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """`count` 1 KB records with unique trace ids, as aiokafka hands them over."""
    value = bytes(range(256)) * (RECORD_BYTES // 256)
    return [
        ConsumerRecord("costs", 0, offset, 0, 0, None, value, None, 0, RECORD_BYTES, headers)
        for offset in range(count)
        for headers in [(("trace_id", b"costs-%012d" % offset),)]
    ]


def ns_per_call(step: Callable[[], object], calls: int) -> float:
    """The best of five timings of `calls` calls of `step`, in ns per call."""
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            step()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e9


async def ns_per_await(step: Callable[[], Awaitable[object]], calls: int) -> float:
    """`ns_per_call` for a coroutine, awaited on the running loop."""
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            await step()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e9


async def hand_over_ns(
    messages: list[ConsumerRecord[bytes, bytes]], *, dedup: bool, batches: bool = False
) -> float:
    """CPU ns per record of the actor's dispatch path (Dispatcher, Handover), async no-op
    handler, one record in flight (or a no-op batch handler, batches of 500)."""
    settings = ConsumerSettings(
        bootstrap_servers="127.0.0.1:9",
        topics=("costs",),
        group_id="costs",
        dedup=DedupSettings(enabled=dedup),
    )
    state = ConsumerState.for_settings(settings)
    progress = Progress(len(messages) + 1)
    handler = batches_handler(progress) if batches else async_handler(progress)
    runner = HandlerRunner(handler, in_thread=False)
    failures = FailurePath(settings, state, None, None, PendingDeliveries(lambda _error: None))
    handover = Handover(settings, state, runner, failures, on_refusal=lambda _refusal: None)
    dispatcher = Dispatcher(
        settings,
        handover,
        state.pauses,
        state.stats,
        batches=batches,
        progress=lambda: None,
        on_failure=lambda: None,
    )
    best = math.inf
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(dispatcher.run)
        for chunk in range(0, len(messages), BATCH):  # the first pass warms up
            tracker = PartitionOffsets()
            batch = messages[chunk : chunk + BATCH]
            started = time.process_time()
            dispatcher.add(tracker, batch)
            while tracker.in_flight:  # noqa: ASYNC110 (polling costs no CPU worth measuring)
                await anyio.sleep(0.001)
            best = min(best, (time.process_time() - started) / len(batch) * 1e9)
        tasks.cancel_scope.cancel()
    return best


async def per_record_costs() -> None:
    """What one record costs on the actor's fast path, piece by piece, without a broker."""
    messages = fetched(20 * BATCH)
    message, calls = messages[0], 100_000
    record = record_of(message)
    breaker = CircuitBreaker("costs")
    window, reader = DedupWindow(100_000), TraceIdReader("header", "trace_id")
    fresh_ids = iter([f"costs-{index}" for index in range(6 * calls)])
    handle = async_handler(Progress(10 * calls))

    def log_context() -> None:
        with KafkaLogContext(record.topic, record.partition, record.offset, "costs"):
            pass

    def read_trace_id() -> None:
        reader.read(record.value, record.headers)

    def dedup_new_id() -> None:
        trace_id = next(fresh_ids)
        window.contains(trace_id)
        window.remember(trace_id)

    bare = await ns_per_await(lambda: handle(record), calls)
    guarded = await ns_per_await(lambda: breaker.call_async(handle, record), calls)
    rows = {
        "Record of a ConsumerRecord": ns_per_call(lambda: record_of(message), calls),
        "KafkaLogContext: build, enter, exit": ns_per_call(log_context, calls),
        "breaker.call_async, beyond awaiting the handler": guarded - bare,
        "trace id header read": ns_per_call(read_trace_id, calls),
        "dedup: contains + remember a new id": ns_per_call(dedup_new_id, calls),
        "awaiting the no-op handler itself": bare,
        "whole fast path per record, dedup on (CPU)": await hand_over_ns(messages, dedup=True),
        "whole fast path per record, dedup off (CPU)": await hand_over_ns(messages, dedup=False),
        "batch path per record, dedup on (CPU)": await hand_over_ns(
            messages, dedup=True, batches=True
        ),
        "batch path per record, dedup off (CPU)": await hand_over_ns(
            messages, dedup=False, batches=True
        ),
    }
    print(f"{'per record':<52}{'ns':>8}")
    for what, cost in rows.items():
        print(f"{what:<52}{cost:>8,.0f}")


async def main(records: int, rounds: int, names: list[str], profiled: str | None) -> None:
    """Produce once, measure the cases, then profile one if asked."""
    with broker() as bootstrap:
        topic = unique_name("profile")
        started = time.perf_counter()
        await fill_topic(bootstrap, topic, records)
        print(f"produced {records:,} records in {time.perf_counter() - started:.1f}s")
        if rounds:
            report(await measure(bootstrap, topic, records, rounds, [LOOP, *names]))
        if profiled is not None:
            await profile(bootstrap, topic, records, profiled)


def parse_args() -> argparse.Namespace:
    """--records, --rounds, --case CASE..., --profile CASE."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="0 skips the table")
    actor_cases = [name for name in CASES if name != LOOP]
    parser.add_argument(
        "--case", action="append", choices=actor_cases, help="measure only these (and the loop)"
    )
    parser.add_argument("--profile", choices=list(CASES), help="run this case under pyinstrument")
    parser.add_argument(
        "--costs", action="store_true", help="only the per-record costs of the fast path"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    chosen = arguments.case or [name for name in CASES if name != LOOP]
    if arguments.costs:
        anyio.run(per_record_costs, backend="asyncio")
        raise SystemExit
    anyio.run(
        main, arguments.records, arguments.rounds, chosen, arguments.profile, backend="asyncio"
    )
