"""The dispatcher against a reference model: random fetches, completion orders, failures,
rebalances, pauses and stops.

No broker: the records are built here and the handler is the test's, each call waiting
until the test finishes it (ok, TRANSIENT or PERMANENT) in an order Hypothesis picks.
Everything else is the consumer's machinery (tests/actors/dispatch_testing.py); the
dead-letter topic is stood in for by a writer that keeps what it is given (no broker).
After every step the rules hold:

- no partition's committable offset passes a record that is not finished;
- in "key" order no two records of one key run at once, and each key's records start
  in offset order (in "partition" order, and for batches, the same per partition;
  a batch is in offset order);
- every fetched record is finished at most once per assignment (the tracker raises on
  a second finish, which would end the dispatcher as a bug);
- records queued plus in flight never exceed the buffer bound;
- nothing starts while paused or after a stop.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
from dispatch_testing import KeptDeadLetters, Rig, message, offline_settings, rig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.consumer.batches import batch_handler
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.settings import ConsumerSettings, Ordering, PoisonGuardSettings
from actors.messages import Record
from core.errors import PermanentError, TransientError

PARTITIONS = 2
KEYS = [b"a", b"b", b"c", None]
Ending = Literal["ok", "transient", "permanent"]


@dataclass
class Call:
    """One handler call in progress, finished when the test says how."""

    record: Record
    ending: Ending = "ok"
    finished: anyio.Event = field(default_factory=anyio.Event)


@dataclass
class Model:
    """What the test knows: the log, what runs, what started, and the rules' evidence."""

    ordering: Ordering
    bound: int
    batches: bool
    log: dict[int, list[bytes | None]] = field(default_factory=dict)
    position: dict[int, int] = field(default_factory=dict)
    trackers: dict[int, PartitionOffsets] = field(default_factory=dict)
    running: list[Call] = field(default_factory=list)
    last_started: dict[Hashable, tuple[int, int]] = field(default_factory=dict)
    """Per key (or partition): the tracker life and offset of the last record started."""
    started: dict[int, Record] = field(default_factory=dict)
    life_of: dict[int, int] = field(default_factory=dict)
    """Record id -> the tracker (assignment) it was fetched under."""
    fetched: dict[int, list[int]] = field(default_factory=dict)
    """Tracker id -> offsets fetched under it."""
    done: dict[int, set[int]] = field(default_factory=dict)
    """Tracker id -> offsets handled or dead-lettered under it."""
    may_start: bool = True
    stopped: bool = False
    every_tracker: list[PartitionOffsets] = field(default_factory=list)
    start: dict[int, int] = field(default_factory=dict)
    """Tracker id -> the offset its assignment started fetching from."""
    violations: list[str] = field(default_factory=list)

    def new_tracker(self, partition: int) -> None:
        """A fresh assignment of `partition`, fetching from its position."""
        tracker = PartitionOffsets()
        self.every_tracker.append(tracker)  # kept alive: ids name assignments
        self.trackers[partition] = tracker
        self.start[id(tracker)] = self.position[partition]

    def lane(self, record: Record) -> Hashable | None:
        if self.batches or self.ordering == "partition":
            return record.partition
        if self.ordering == "key":
            return (record.partition, record.key)
        return None

    async def handle(self, record: Record) -> None:
        """The per-record handler."""
        await self.handle_batch([record])

    async def handle_batch(self, records: Sequence[Record]) -> None:
        """The handler (of a batch, or of one record): checks the start rules, then waits
        until the test finishes it. A retry (records in flight all along, handed over
        again: the same Record objects) is not a start."""
        first = records[0]
        retry = any(id(record) in self.started for record in records)
        for record in records:
            if id(record) not in self.started:
                self.started[id(record)] = record
                self.life_of[id(record)] = id(self.trackers[record.partition])
        life = self.life_of[id(first)]
        if not self.may_start and not retry:
            self.violations.append(f"{first.offset} started while paused or stopped")
        if [r.offset for r in records] != sorted({r.offset for r in records}):
            self.violations.append(f"a batch out of offset order: {records}")
        lane = self.lane(first)
        if lane is not None:
            if any(self.lane(c.record) == lane for c in self.running):
                self.violations.append(f"two units of lane {lane!r} ran at once")
            last = self.last_started.get(lane)
            if last is not None and last[0] == life and last[1] > first.offset:
                self.violations.append(f"lane {lane!r} started {first.offset} after {last[1]}")
            self.last_started[lane] = (life, first.offset)
        call = Call(first)
        self.running.append(call)
        try:
            await call.finished.wait()
        finally:
            self.running.remove(call)
        finished = call.ending == "ok" or (call.ending == "permanent" and len(records) == 1)
        if finished:  # handled, or dead-lettered right after
            for record in records:
                done = self.done.setdefault(self.life_of[id(record)], set())
                if record.offset in done:
                    self.violations.append(f"{record.offset} finished twice")
                done.add(record.offset)
        if call.ending == "transient":
            raise TransientError(f"transient at {first.offset}")
        if call.ending == "permanent":
            raise PermanentError(f"permanent at {first.offset}")


Step = tuple[Any, ...]


def steps() -> st.SearchStrategy[list[Step]]:
    fetch = st.tuples(
        st.just("fetch"),
        st.integers(0, PARTITIONS - 1),
        st.lists(st.sampled_from(KEYS), min_size=1, max_size=8),
    )
    finish = st.tuples(
        st.just("finish"),
        st.integers(0, 50),
        st.sampled_from(["ok", "ok", "ok", "transient", "permanent"]),
    )
    others = st.tuples(st.sampled_from(["pause", "resume", "stop"])) | st.tuples(
        st.just("revoke"), st.integers(0, PARTITIONS - 1)
    )
    return st.lists(st.one_of(fetch, fetch, finish, finish, finish, others), max_size=40)


def check(model: Model, rigged: Rig) -> None:
    """The rules that must hold between any two steps."""
    dispatcher = rigged.dispatcher
    assert not model.violations, model.violations
    failure = dispatcher.failure
    assert failure is None or isinstance(failure, TransientError | PermanentError), failure
    assert rigged.state.stats.queued + dispatcher.in_flight <= model.bound
    assert len(model.running) <= dispatcher.in_flight
    for tracker in model.trackers.values():
        life = id(tracker)
        unfinished = set(model.fetched.get(life, [])) - model.done.get(life, set())
        mark = tracker.watermark()
        if mark is not None and unfinished:
            assert mark <= min(unfinished), (mark, sorted(unfinished))


async def run_model(
    ordering: Ordering, in_flight: int, bound: int, batches: bool, plan: list[Step]
) -> None:
    config: ConsumerSettings = offline_settings(
        ordering=ordering,
        max_in_flight=in_flight,
        max_buffered=bound,
        dead_letter_topic="{topic}.dlq",
        poison=PoisonGuardSettings(window=100, max_share=1.0, min_sample=100),
        batch_max_records=3,
        batch_max_wait_ms=0,
    )
    model = Model(ordering, bound, batches)
    handler = batch_handler(model.handle_batch) if batches else model.handle
    rigged = rig(handler, config, dead_letters=KeptDeadLetters())
    dispatcher, pauses = rigged.dispatcher, rigged.state.pauses
    for partition in range(PARTITIONS):
        model.log[partition] = []
        model.position[partition] = 0
        model.new_tracker(partition)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(dispatcher.run)
        for step in plan:
            kind = step[0]
            if kind == "fetch":
                partition, keys = step[1], step[2]
                log = model.log[partition]
                log.extend(keys)
                position = model.position[partition]
                count = min(dispatcher.room, len(log) - position)
                if count:
                    batch = [
                        message(offset, key=log[offset], partition=partition)
                        for offset in range(position, position + count)
                    ]
                    tracker = model.trackers[partition]
                    dispatcher.add(tracker, batch)
                    model.fetched.setdefault(id(tracker), []).extend(
                        range(position, position + count)
                    )
                    model.position[partition] = position + count
            elif kind == "finish" and model.running:
                call = model.running[step[1] % len(model.running)]
                call.ending = step[2]
                call.finished.set()
            elif kind == "pause":
                pauses.hold("test")
                model.may_start = False
            elif kind == "resume" and "test" in pauses.reasons:
                pauses.lift("test")
                model.may_start = dispatcher.failure is None and not model.stopped
                dispatcher.wake()
            elif kind == "stop":
                model.may_start = False
                model.stopped = True
                await dispatcher.halt(0)
            elif kind == "revoke":  # and assigned again at once, from the last commit
                partition = step[1]
                old = model.trackers[partition]
                old.released = True
                dispatcher.drop_released()
                mark = old.watermark()
                model.position[partition] = mark if mark is not None else model.start[id(old)]
                model.new_tracker(partition)
            await anyio.wait_all_tasks_blocked()
            if dispatcher.failure is not None:
                model.may_start = False
            check(model, rigged)
        await finish_everything(model, rigged)
        tasks.cancel_scope.cancel()


async def finish_everything(model: Model, rigged: Rig) -> None:
    """Lift the test's pause and let every call end well: unless the dispatcher stopped,
    every record fetched under the current assignments is then finished (none is lost
    or stuck), and the watermarks are past them."""
    if "test" in rigged.state.pauses.reasons:
        rigged.state.pauses.lift("test")
        model.may_start = not model.stopped and rigged.dispatcher.failure is None
        rigged.dispatcher.wake()
        await anyio.wait_all_tasks_blocked()
    while model.running:
        for call in list(model.running):
            call.finished.set()
        await anyio.wait_all_tasks_blocked()
        check(model, rigged)
    if model.stopped or rigged.dispatcher.failure is not None:
        return
    assert rigged.state.stats.queued == 0
    for partition, tracker in model.trackers.items():
        fetched = model.fetched.get(id(tracker), [])
        assert set(fetched) <= model.done.get(id(tracker), set())
        if fetched:
            assert tracker.watermark() == model.position[partition]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["key", "partition", "none"]),
    st.integers(1, 4),
    st.integers(4, 12),
    st.booleans(),
    steps(),
)
def test_the_dispatcher_keeps_its_rules_under_any_schedule(
    ordering: Ordering, in_flight: int, bound: int, batches: bool, plan: list[Step]
) -> None:
    """Whatever is fetched, however and in whatever order handler calls (of records, or
    of batches) end, whatever pauses, rebalances and stops come between, the module's
    rules hold after each step."""
    anyio.run(run_model, ordering, in_flight, max(bound, in_flight), batches, plan)
