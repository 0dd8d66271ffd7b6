"""The dispatcher's particular rules: a trace id in flight, handlers that end the
process, bugs of the pipeline, a hot key.

No broker: records are built here (tests/actors/dispatch_testing.py); the dead-letter
topic is stood in for by a writer that keeps what it is given.
"""

from __future__ import annotations

import anyio
import pytest
from dispatch_testing import KeptDeadLetters, message, offline_settings, rig, settle

from actors.consumer.offsets import PartitionOffsets
from actors.consumer.settings import PoisonGuardSettings
from actors.messages import Record
from core.errors import PipelineError
from core.types import ErrorCategory

pytestmark = pytest.mark.anyio


async def test_a_trace_id_in_flight_is_not_handed_over_twice() -> None:
    """Two records of different keys with one trace id: the second waits for the first
    and, once that one is handled, is skipped as a duplicate."""
    calls: list[int] = []
    release = anyio.Event()

    async def handle(record: Record) -> None:
        calls.append(record.offset)
        await release.wait()

    rigged = rig(handle, offline_settings(ordering="key", max_in_flight=4))
    tracker = PartitionOffsets()
    records = [message(0, "same", key=b"a"), message(1, "same", key=b"b"), message(2, key=b"c")]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        rigged.dispatcher.add(tracker, records)
        await anyio.wait_all_tasks_blocked()
        assert calls == [0, 2]
        release.set()
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    assert calls == [0, 2]
    assert rigged.state.stats.deduplicated == 1
    assert tracker.watermark() == 3


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()])
async def test_a_handler_ending_the_process_fails_only_its_record(raised: BaseException) -> None:
    """A handler raising SystemExit or KeyboardInterrupt has failed that record for good:
    it is dead-lettered with a message saying so, and the others are handled."""
    handled: list[int] = []

    async def handle(record: Record) -> None:
        if record.offset == 1:
            raise raised
        handled.append(record.offset)

    kept = KeptDeadLetters()
    config = offline_settings(
        dead_letter_topic="{topic}.dlq",
        poison=PoisonGuardSettings(window=100, max_share=1.0, min_sample=100),
    )
    rigged = rig(handle, config, dead_letters=kept)
    tracker = PartitionOffsets()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        rigged.dispatcher.add(tracker, [message(offset) for offset in range(3)])
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    assert kept.written == [(0, 1)]
    assert handled == [0, 2]
    assert tracker.watermark() == 3


async def test_a_bug_in_the_pipeline_is_unknown_never_a_dead_letter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception raised by the consumer's own code (here: reading the trace id) is not
    the handler's failure: nothing is dead-lettered, the dispatcher stops with an UNKNOWN
    error (the supervisor restarts), and the record stays uncommitted."""
    kept = KeptDeadLetters()
    rigged = rig(
        lambda record: None, offline_settings(dead_letter_topic="{topic}.dlq"), dead_letters=kept
    )
    reader = rigged.state.trace_ids
    assert reader is not None

    def broken(*_: object) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(reader, "read", broken)
    tracker = PartitionOffsets()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(rigged.dispatcher.run)
        rigged.dispatcher.add(tracker, [message(0, "t")])
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    failure = rigged.dispatcher.failure
    assert isinstance(failure, PipelineError)
    assert failure.category is ErrorCategory.UNKNOWN
    assert kept.written == []
    assert tracker.watermark() is None


async def test_a_hot_key_fills_the_bound_not_memory_and_other_keys_go_on() -> None:
    """While one key's records wait behind a slow one, fetching more is refused at the
    bound, and the records of other keys queued meanwhile are handled."""
    slow = anyio.Event()
    handled: list[bytes | None] = []

    async def handle(record: Record) -> None:
        if record.key == b"hot" and record.offset == 0:
            await slow.wait()
        handled.append(record.key)

    rigged = rig(handle, offline_settings(ordering="key", max_in_flight=4, max_buffered=8))
    tracker = PartitionOffsets()
    dispatcher = rigged.dispatcher
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(dispatcher.run)
        dispatcher.add(tracker, [message(offset, key=b"hot") for offset in range(6)])
        dispatcher.add(tracker, [message(offset, key=b"cold") for offset in range(6, 8)])
        await anyio.wait_all_tasks_blocked()
        assert handled == [b"cold", b"cold"]
        assert dispatcher.room == 8 - 6  # the hot key's six are held, no more
        assert not dispatcher.may_fetch  # room for 2 is less than half the bound
        slow.set()
        await settle(rigged, lambda: tracker.in_flight == 0)
        tasks.cancel_scope.cancel()
    assert handled.count(b"hot") == 6
    assert tracker.watermark() == 8
