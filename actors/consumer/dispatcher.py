"""The dispatcher: fetched records run in lanes, at most `max_in_flight` at a time.

    dispatcher.add(tracker, messages)     # a fetched partition's records, tracked, queued
    await dispatcher.run()                # the workers (until cancelled)
    await dispatcher.halt(budget)         # stop starting; in-flight records get `budget`

One mechanism for every way of handling: `max_in_flight` workers take runs from the
lanes (actors.consumer.lanes) and hand them over (actors.consumer.handover). A run is
the front of one lane: up to RUN_LENGTH records handed one by one to a per-record
handler, or for a batch handler one batch of up to `batch_max_records` of a partition's
records (what is queued, waiting up to `batch_max_wait_ms` for more while more can
arrive). Sequential handling is one worker; "partition", "key" and "none" only change
what a lane is.

A worker's loop, the record's whole path here:

    run = next run        (None while halted or paused: the one stop check, `_may_start`,
                           asked again before each record of the run)
    hand it over          (the hand-over books every record it finishes)
    release its lane      (unfinished records go back to the front of their lane; the
                           lane goes to the back of the ready queue if it has more)

Memory: `room` is `max_buffered` (settings.buffer_bound()) less the records queued and in
flight (a run's records count as in flight); the fetch loop asks for at most `room`
records and fetches only while `may_fetch` (room for half the bound or a whole
`max_poll_records`, whichever is less), so what the consumer holds stays within the
bound (aiokafka's own prefetch is bounded by its fetch sizes, a fetch per partition).
A slow key fills at most the bound, never more: then fetching waits for records to
finish.

Stopping: `halt` (a graceful stop, or a failure) stops starting records and gives those
in flight a budget to finish; the caller then commits the finished prefix. A hand-over
that raises MustExitError halts the dispatcher with its error (`failure`). Anything else it
raises is a bug in the pipeline, not in the handler: logged loudly and turned into an
UNKNOWN error (the supervisor restarts), never a dead letter. Pauses (a breaker open, a
PausePartitions) stop records from starting; those in flight finish. A revocation drops
the revoked partitions' queued records and waits for their running ones
(`wait_until_settled`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import anyio
import anyio.lowlevel

from actors.consumer.failures import MustExitError
from actors.consumer.handover import Handover
from actors.consumer.lanes import Lanes, Span, spans_of
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.pauses import PauseReasons
from actors.consumer.settings import ConsumerSettings
from actors.consumer.stats import ConsumerStats
from core.errors import PipelineError
from core.types import ErrorCategory

__all__ = ["Dispatcher"]

_log = logging.getLogger(__name__)

RUN_LENGTH: Final = 256
"""Records of one lane a worker hands over in one go to a per-record handler (one by one,
the stop check before each) before the lane takes its turn again: the per-run costs
(taking, releasing, counting) are paid once for many records of a busy partition."""


class Dispatcher:
    """Runs queued records through the hand-over, lane by lane (see the module docstring)."""

    def __init__(
        self,
        settings: ConsumerSettings,
        handover: Handover,
        pauses: PauseReasons,
        stats: ConsumerStats,
        *,
        batches: bool,
        progress: Callable[[], None],
        on_failure: Callable[[], None],
    ) -> None:
        self._handover = handover
        self._pauses = pauses
        self._stats = stats
        self._progress = progress
        self._on_failure = on_failure
        self._workers = settings.max_in_flight
        self._bound = settings.buffer_bound(batches=batches)
        self._fetch_at = max(1, min(settings.max_poll_records, self._bound // 2))
        self._run_size = settings.batch_max_records if batches else RUN_LENGTH
        self._fill_s = settings.batch_max_wait_ms / 1000 if batches else 0.0
        self._spans_of = spans_of(settings.ordering, batches=batches)
        self._lanes = Lanes()
        self._in_flight = 0
        self._changed = anyio.Event()
        self._watchers = 0
        self._idle: deque[anyio.Event] = deque()
        """Workers waiting for a ready lane, each on its own event: a change wakes as many
        as there are ready lanes, not every idle worker (256 workers woken for one
        record would cost more than the record)."""
        self._halted = False
        self.failure: BaseException | None = None
        """The error the consumer must exit with, once a hand-over raised one."""

    @property
    def in_flight(self) -> int:
        """Records handed over and not back yet."""
        return self._in_flight

    @property
    def room(self) -> int:
        """How many more records may be fetched before the buffer bound is reached."""
        return max(0, self._bound - self._lanes.queued - self._in_flight)

    @property
    def may_fetch(self) -> bool:
        """Whether there is room enough to fetch: a fetch per few records finished would
        cost more than the records (aiokafka's getmany is not free), so fetching waits for
        room for half the bound or a whole `max_poll_records`, whichever is less."""
        return self.room >= self._fetch_at

    def add(self, tracker: PartitionOffsets, messages: Sequence[Any]) -> None:
        """Track and queue one partition's fetched `messages` (in offset order)."""
        if not messages:
            return
        seq = tracker.track([message.offset for message in messages])
        self._lanes.add(self._spans_of(messages, tracker, seq))
        self._stats.queued = self._lanes.queued
        self.wake()

    def drop_released(self) -> None:
        """Drop the queued records of partitions being revoked or reassigned."""
        if self._lanes.drop_released():
            self._stats.queued = self._lanes.queued
            self.wake()

    def wake(self) -> None:
        """Something changed (records queued or finished, a pause lifted): look again."""
        if self._watchers:  # an event costs microseconds: made only when someone waits
            changed, self._changed = self._changed, anyio.Event()
            changed.set()
        idle = self._idle
        for _ in range(min(len(idle), self._lanes.ready)):
            idle.popleft().set()

    async def _next_change(self) -> None:
        """Wait until `wake` is called."""
        self._watchers += 1
        try:
            await self._changed.wait()
        finally:
            self._watchers -= 1

    async def run(self) -> None:
        """The workers; runs until cancelled."""
        async with anyio.create_task_group() as workers:
            for _ in range(self._workers):
                workers.start_soon(self._work)

    async def _work(self) -> None:
        handed_over = 0
        while True:
            run = self._next_run()
            if run is None:
                handed_over = 0
                idle = anyio.Event()
                self._idle.append(idle)
                await idle.wait()
                continue
            await self._run(run)
            handed_over += sum(map(len, run))
            if handed_over >= RUN_LENGTH:
                # Let the fetch loop and aiokafka's fetcher in now and then: a handler that
                # never waits would otherwise keep them out until the buffer is empty.
                handed_over = 0
                await anyio.lowlevel.checkpoint()

    def _next_run(self) -> list[Span] | None:
        """Records from the front of the next ready lane, unless nothing may start."""
        if not self._may_start():
            return None
        return self._lanes.take(self._run_size)

    def _may_start(self, tracker: PartitionOffsets | None = None) -> bool:
        """The one stop check, before taking a run and before each record (or batch):
        nothing starts while halted or paused, nor a record of a revoked partition
        (`tracker`'s)."""
        if self._halted or self._pauses.paused:
            return False
        return tracker is None or not tracker.released

    async def _run(self, run: list[Span]) -> None:
        lane = run[0].lane
        self._started(run)
        finished = False
        try:
            if self._fill_s > 0 and sum(map(len, run)) < self._run_size:
                await self._fill(run)
            finished = await self._handover.run(run, self._may_start)
        except MustExitError as exit_:
            self._fail(exit_.error)
        except Exception as exc:
            self._fail(_pipeline_bug(exc))
        finally:
            self._ended(run)
            back = [] if finished else [s for s in map(Span.unfinished, run) if s is not None]
            self._lanes.release(lane, back)
            self._stats.queued = self._lanes.queued
            self.wake()
            self._progress()

    async def _fill(self, batch: list[Span]) -> None:
        """Add queued records of the batch's lane until it is full, the wait is over, or no
        more can arrive soon (too little room to fetch, the consumer halts, the partition
        goes)."""
        lane, tracker = batch[0].lane, batch[0].tracker
        deadline = anyio.current_time() + self._fill_s
        size = sum(map(len, batch))
        while True:
            more = self._lanes.take_more(lane, self._run_size - size)
            size += self._started(more)
            batch.extend(more)
            if size >= self._run_size or not self.may_fetch:
                return  # full, or nothing more is fetched until records finish
            if self._halted or tracker.released:
                return
            with anyio.move_on_after(deadline - anyio.current_time()) as waited:
                await self._next_change()
            if waited.cancelled_caught:
                return

    def _started(self, spans: Iterable[Span]) -> int:
        """Count `spans` as in flight; returns how many records they hold."""
        count = 0
        for span in spans:
            size = len(span)
            span.tracker.running += size
            count += size
        self._in_flight += count
        self._stats.in_flight = self._in_flight
        self._stats.queued = self._lanes.queued
        return count

    def _ended(self, spans: Iterable[Span]) -> None:
        count = 0
        for span in spans:
            size = len(span)
            span.tracker.running -= size
            count += size
        self._in_flight -= count
        self._stats.in_flight = self._in_flight

    def _fail(self, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
        self._halted = True
        self._on_failure()

    def fail(self, error: BaseException) -> None:
        """Halt with `error` for the consumer to exit with, as a hand-over raising
        MustExitError does (for a failure found outside a hand-over)."""
        self._fail(error)

    async def halt(self, budget: float) -> None:
        """Start nothing more; wait up to `budget` seconds for the units in flight."""
        self._halted = True
        self.wake()
        with anyio.move_on_after(budget):
            while self._in_flight:
                await self._next_change()

    async def wait_for_room(self, at_most: float) -> None:
        """Wait until records may be fetched again (`may_fetch`), at most `at_most` s."""
        with anyio.move_on_after(at_most):
            while not self.may_fetch and not self._halted:
                await self._next_change()

    async def wait_until_settled(self, trackers: Sequence[PartitionOffsets], budget: float) -> None:
        """Wait up to `budget` seconds until no record of `trackers` is running."""
        with anyio.move_on_after(budget):
            while any(tracker.running for tracker in trackers):
                await self._next_change()


def _pipeline_bug(exc: Exception) -> PipelineError:
    """An exception the hand-over did not raise on purpose: a bug, UNKNOWN, said loudly."""
    _log.critical(
        "bug in the consumer's own code while handing records over (not the handler's "
        "fault; the consumer exits for a restart): %s: %s",
        type(exc).__name__,
        exc,
        exc_info=exc,
    )
    error = PipelineError(
        f"consumer bug: {type(exc).__name__}: {exc}", category=ErrorCategory.UNKNOWN
    )
    error.__cause__ = exc
    return error
