"""Batch handlers on the dispatcher: batches of one partition in offset order, failures
named per record, a PERMANENT batch split down to its bad records, duplicates left out.

No broker: records are built here, the handler is the test's, the dead-letter topic is
stood in for by a writer that keeps what it is given (tests/actors/dispatch_testing.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import anyio
import anyio.lowlevel
import pytest
from dispatch_testing import KeptDeadLetters, message, offline_settings, rig, settle
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.consumer.batches import BatchResult, batch_handler
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.settings import ConsumerSettings, PoisonGuardSettings
from actors.messages import Record
from core.errors import ConfigurationError, PermanentError, TransientError

pytestmark = pytest.mark.anyio


def batch_settings(**overrides: object) -> ConsumerSettings:
    """Dead letters kept, no poison storm, batches of at most 8, no wait to fill."""
    values: dict[str, object] = {
        "dead_letter_topic": "{topic}.dlq",
        "poison": PoisonGuardSettings(window=100, max_share=1.0, min_sample=100),
        "batch_max_records": 8,
        "batch_max_wait_ms": 0,
    }
    return offline_settings(**(values | overrides))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.sets(st.integers(0, n - 1), max_size=6),
            st.sets(st.integers(0, n - 1), max_size=6),
        )
    ),
    st.sampled_from([True, False]),
)
def test_only_the_bad_records_of_a_batch_are_dead_lettered(
    scenario: tuple[int, set[int], set[int]], sync: bool
) -> None:
    """Whatever records poison a whole batch (it raises PERMANENT while they are in it)
    and whatever records the handler reports failing once (TRANSIENT, in its result),
    exactly the poisonous ones are dead-lettered, every other record is handled by
    exactly one successful call, batches are one partition's records in offset order
    and no longer than the setting, and the partition's offset ends past them all."""
    count, bad, flaky = scenario
    flaky -= bad
    handled: Counter[int] = Counter()
    batches: list[list[int]] = []
    failed_once: set[int] = set()

    def handle(records: Sequence[Record]) -> BatchResult | None:
        offsets = [record.offset for record in records]
        batches.append(offsets)
        if bad & set(offsets):
            raise PermanentError("a bad record spoils the batch")
        failing = {o: TransientError("flaky") for o in offsets if o in flaky - failed_once}
        failed_once.update(failing)
        handled.update(o for o in offsets if o not in failing)
        return BatchResult(failing) if failing else None

    async def scenario_run() -> tuple[KeptDeadLetters, PartitionOffsets]:
        async def handle_async(records: Sequence[Record]) -> BatchResult | None:
            return handle(records)

        kept = KeptDeadLetters()
        rigged = rig(
            batch_handler(handle if sync else handle_async), batch_settings(), dead_letters=kept
        )
        tracker = PartitionOffsets()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(rigged.dispatcher.run)
            rigged.dispatcher.add(tracker, [message(offset) for offset in range(count)])
            await settle(rigged, lambda: tracker.in_flight == 0)
            tasks.cancel_scope.cancel()
        assert rigged.dispatcher.failure is None
        return kept, tracker

    kept, tracker = anyio.run(scenario_run)
    assert sorted(offset for _, offset in kept.written) == sorted(bad)
    assert handled == Counter(o for o in range(count) if o not in bad)
    assert all(batch == sorted(batch) and len(batch) <= 8 for batch in batches)
    assert tracker.watermark() == count


async def test_duplicates_are_left_out_before_the_batch_is_formed() -> None:
    """Records whose trace id was handled before never reach the batch handler; they are
    counted as duplicates and their offsets are committed like the others."""
    seen: list[list[int]] = []

    async def handle(records: Sequence[Record]) -> None:
        seen.append([record.offset for record in records])

    rigged = rig(batch_handler(handle), batch_settings())
    tracker = PartitionOffsets()
    ids = ["a", "b", "a", "c", "b", "d"]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        rigged.dispatcher.add(tracker, [message(o, trace) for o, trace in enumerate(ids)])
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    handed = [offset for batch in seen for offset in batch]
    assert sorted(handed) == [0, 1, 3, 5]
    assert rigged.state.stats.deduplicated == 2
    assert tracker.watermark() == 6


async def test_batches_of_different_partitions_run_at_once() -> None:
    """With two partitions and two in flight, a batch of each partition is in the handler
    at the same time."""
    inside: set[int] = set()
    both = anyio.Event()

    async def handle(records: Sequence[Record]) -> None:
        inside.add(records[0].partition)
        if len(inside) == 2:
            both.set()
        await both.wait()

    rigged = rig(batch_handler(handle), batch_settings(max_in_flight=2))
    trackers = [PartitionOffsets(), PartitionOffsets()]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        for partition, tracker in enumerate(trackers):
            rigged.dispatcher.add(tracker, [message(o, partition=partition) for o in range(5)])
        with anyio.fail_after(5):
            await both.wait()
        await settle(rigged, lambda: all(t.in_flight == 0 for t in trackers))
        tasks.cancel_scope.cancel()
    assert [tracker.watermark() for tracker in trackers] == [5, 5]


async def test_a_batch_result_of_the_wrong_kind_stops_the_consumer() -> None:
    """A batch handler that returns something else than a BatchResult or None is broken:
    the consumer exits with a PermanentError saying so, and nothing is committed."""

    async def handle(records: Sequence[Record]) -> object:
        return [record.offset for record in records]

    rigged = rig(batch_handler(handle), batch_settings())  # type: ignore[arg-type]
    tracker = PartitionOffsets()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        rigged.dispatcher.add(tracker, [message(o) for o in range(3)])
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    assert isinstance(rigged.dispatcher.failure, PermanentError)
    assert "BatchResult" in str(rigged.dispatcher.failure)
    assert tracker.watermark() is None


@pytest.mark.parametrize("batches", [True, False], ids=["batch", "per-record"])
async def test_a_configuration_error_stops_the_consumer_without_dead_letters(
    batches: bool,
) -> None:
    """A handler raising ConfigurationError (its table or store refuses everything) is not
    split or dead-lettered record by record: the consumer exits with that error and
    nothing is committed."""
    calls: list[int] = []

    async def refuse(records: Sequence[Record] | Record) -> None:
        calls.append(1)
        raise ConfigurationError("the table's schema does not match")

    kept = KeptDeadLetters()
    handler = batch_handler(refuse) if batches else refuse
    rigged = rig(handler, batch_settings(), dead_letters=kept)
    tracker = PartitionOffsets()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        rigged.dispatcher.add(tracker, [message(o) for o in range(6)])
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    assert isinstance(rigged.dispatcher.failure, ConfigurationError)
    assert calls == [1]
    assert kept.written == []
    assert rigged.state.stats.dead_lettered == 0
    assert tracker.watermark() is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from("abcdefghij")), min_size=1, max_size=20),
        min_size=1,
        max_size=3,
    ),
    st.sets(st.sampled_from("abcdefghij"), max_size=4),
    st.integers(1, 3),
)
def test_trace_ids_reach_the_batch_handler_once_whatever_the_batches_share(
    partitions: list[list[str | None]], known: set[str], in_flight: int
) -> None:
    """With trace ids repeated within a batch, across partitions' concurrent batches and
    already in the dedup window, each id the window did not know is handed over exactly
    once and never in two batches at a time, records without an id always are, the rest
    are counted as duplicates, and every partition's offset ends past its records."""
    handed: Counter[str | None] = Counter()
    holding: set[str] = set()
    overlaps: list[str] = []

    async def handle(records: Sequence[Record]) -> None:
        ids = [record.header("trace_id") for record in records]
        texts = [raw.decode() if raw is not None else None for raw in ids]
        overlaps.extend(t for t in texts if t is not None and t in holding)
        holding.update(t for t in texts if t is not None)
        await anyio.lowlevel.checkpoint()
        holding.difference_update(t for t in texts if t is not None)
        handed.update(texts)

    async def scenario_run() -> tuple[int, list[PartitionOffsets]]:
        rigged = rig(batch_handler(handle), batch_settings(max_in_flight=in_flight))
        assert rigged.state.dedup is not None
        rigged.state.dedup.remember_all(sorted(known))
        trackers = [PartitionOffsets() for _ in partitions]
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(rigged.dispatcher.run)
            for partition, (tracker, ids) in enumerate(zip(trackers, partitions, strict=True)):
                batch = [message(o, t, partition=partition) for o, t in enumerate(ids)]
                rigged.dispatcher.add(tracker, batch)
            await settle(rigged, lambda: all(t.in_flight == 0 for t in trackers))
            tasks.cancel_scope.cancel()
        assert rigged.dispatcher.failure is None
        return rigged.state.stats.deduplicated, trackers

    deduplicated, trackers = anyio.run(scenario_run)
    all_ids = [t for ids in partitions for t in ids]
    new_ids = {t for t in all_ids if t is not None} - known
    assert overlaps == []
    assert handed == Counter(dict.fromkeys(new_ids, 1) | {None: all_ids.count(None)})
    assert deduplicated == len(all_ids) - all_ids.count(None) - len(new_ids)
    assert [t.watermark() for t in trackers] == [len(ids) for ids in partitions]
