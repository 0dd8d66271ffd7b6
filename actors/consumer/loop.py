"""One incarnation of the consumer: fetch, dispatch, commit what is finished.

At-least-once. Auto-commit is off. Fetched records are tracked and queued in the
dispatcher (actors.consumer.dispatcher), which runs them in lanes, up to
`max_in_flight` at a time, in the order the `ordering` setting keeps. Records finish out
of order; a partition's offset becomes committable once a record and every earlier
record of its partition are finished (handled, skipped as a duplicate, acknowledged
by the dead-letter topic, or handed to a retry tier, whose acknowledgement the commit
awaits: actors.consumer.offsets, .deliveries). Finished offsets are committed every
`commit_interval_s`, when partitions are revoked, and when the consumer exits for any
reason (bounded by `shutdown_timeout_s`, shielded from cancellation). What was not
finished is delivered again, to this consumer after a restart or to the partition's
next owner. Only a member of the group commits: partitions revoked after the membership
was lost are not committed (actors.consumer.membership).

Fetching asks for at most the dispatcher's `room` (the buffer bound less the records
queued and in flight) and waits while there is not enough (`may_fetch`): memory stays
bounded whatever the handler's speed.

Pausing: this loop is the one owner of the pause decision. Pause reasons
(actors.consumer.pauses) come from PausePartitions commands (the breaker monitor) and
from a breaker refusing a record (the handler's, or one the handler calls through;
the refused record goes back to the front of its lane). While any reason is held,
fetching stops (aiokafka's partitions are paused) and no record starts; those in
flight finish. Queued records wait in their lanes (bounded), so nothing is sought back.
Fetching and starting resume on ResumePartitions, or by themselves once the refusing
breaker's retry-after is over (for the handler's breaker: once it lets a trial call
through), whichever comes first; the commands are idempotent.

Retry tiers (actors.consumer.retry_tiers): the consumer also subscribes to its tier
topics; each fetched tier batch passes the tier gate, which hands over the records that
are due and parks the partition at the first that is not (sought back, paused alone
until it is due); every turn of the fetch loop resumes the parked partitions that came
due, so a record is at most one poll interval late.

Rebalance: for revoked partitions, queued records are dropped, the running ones get
the revocation deadline (`max_poll_interval_ms`, the rebalance timeout the group gives
its members) to finish, then the finished prefix is committed.

Stall watchdog: a task beside the loop refreshes the lag gauges and, while no record
is in flight, asks actors.consumer.stall whether the consumer is stalled; if so it
raises TransientError. It runs beside the loop because a stalled loop (a fetch waiting
for a coordinator that is gone) cannot judge itself. On the same tick it resets a
partition whose position stayed above its log end, which a broker that lost records
may not report as out of range (actors.consumer.out_of_range).

Exit: on a stop, or when the dispatcher must exit (retries spent, a poison storm, AUTH
that a refresh did not fix, a bug), nothing new starts, the records in flight get
`shutdown_timeout_s` to finish, then the exit path commits the finished prefix and
leaves the group (another `shutdown_timeout_s`), and the error (if any) is raised for
the supervisor. A cancellation cancels the async handler calls in flight (a handler
thread finishes its call, which is booked) and takes the same exit path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import anyio
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.consumer.client_config import consumer_kwargs, producer_kwargs
from actors.consumer.dead_letter import DeadLetterWriter
from actors.consumer.deliveries import PendingDeliveries
from actors.consumer.dispatcher import Dispatcher
from actors.consumer.failures import FailurePath, Refusal
from actors.consumer.handler_calls import HandlerRunner
from actors.consumer.handover import Handover
from actors.consumer.membership import is_group_member, refuse_commits_outside_the_group
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.out_of_range import BeyondLogEnd, reset_position
from actors.consumer.partitions import OwnedPartitions
from actors.consumer.retry_tiers.gate import TierGate
from actors.consumer.sasl_failures import start_consumer
from actors.consumer.settings import ConsumerSettings
from actors.consumer.stall import PartitionProgress, lag, stalled
from actors.consumer.state import ConsumerState
from actors.consumer.unparseable import FETCH_PARSE_ERRORS, FetchStart, fetch_positions, recover
from actors.messages import PausePartitions, RefreshRequest, ResumePartitions
from core.errors import TransientError, classify_exception
from core.types import ErrorCategory

__all__ = ["ConsumerLoop", "PartitionCommand"]

_log = logging.getLogger(__name__)

POLL_TIMEOUT_MS: Final = 200
"""How long one fetch waits for records: bounds how late a stop or a resume is noticed."""

_POSITION_TIMEOUT_S: Final = 0.1
_WATCH_INTERVAL_S: Final = 1.0

PartitionCommand = PausePartitions | ResumePartitions


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands aiokafka's rebalance callbacks to the loop."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._loop.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._loop.on_assigned(assigned)


class ConsumerLoop:
    """Runs one aiokafka consumer from start to exit (see the module docstring)."""

    def __init__(
        self,
        settings: ConsumerSettings,
        state: ConsumerState,
        handler: HandlerRunner,
        *,
        stop: anyio.Event,
        commands: MemoryObjectReceiveStream[PartitionCommand] | None,
        refresh_requests: MemoryObjectSendStream[RefreshRequest] | None,
    ) -> None:
        self._settings = settings
        self._state = state
        self._stats = state.stats
        self._stop = stop
        self._commands = commands
        self._clock = time.monotonic
        self._consumer = AIOKafkaConsumer(**consumer_kwargs(settings))
        self._dead_letters = (
            DeadLetterWriter(producer_kwargs(settings))
            if settings.dead_letter_topic is not None or settings.retry_tiers.enabled
            else None
        )
        deliveries = PendingDeliveries(lambda error: self._dispatcher.fail(error))
        self._partitions = OwnedPartitions(
            self._consumer,
            self._stats,
            state.pauses,
            before_commit=handler.before_commit,
            deliveries=deliveries,
        )
        self._pauses = state.pauses
        self._tier_gate = (
            TierGate(
                settings.tier_map,
                state.pauses,
                state.stats,
                pause=self._partitions.pause_one,
                seek=self._consumer.seek,
                resume=self._partitions.resume_one,
                keys=state.keys_in_retry,
                sources=self._partitions.owned,
            )
            if settings.retry_tiers.enabled
            else None
        )
        self._beyond_log_end = BeyondLogEnd(enabled=settings.reset_beyond_log_end)
        self._halt = anyio.Event()
        """Set on a stop or when the dispatcher must exit: fetching ends."""
        failures = FailurePath(settings, state, self._dead_letters, refresh_requests, deliveries)
        handover = Handover(settings, state, handler, failures, on_refusal=self._refused)
        self._dispatcher = Dispatcher(
            settings,
            handover,
            state.pauses,
            state.stats,
            batches=handler.batches,
            progress=self._progress,
            on_failure=self._halt.set,
        )
        self._last_progress = time.monotonic()
        self._fetching: anyio.CancelScope | None = None

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """Consume until stopped; raises what the supervisor must decide on."""
        try:
            await start_consumer(self._consumer, self._settings)
            refuse_commits_outside_the_group(self._consumer)
            if self._dead_letters is not None:
                await self._dead_letters.start()
                await self._dead_letters.warm_up(self._settings.tier_map.topics(), 5.0)
            self._consumer.subscribe(
                topics=list(self._settings.consumed_topics), listener=_Rebalance(self)
            )
            task_status.started()
            await self._run_tasks()
        finally:
            with anyio.move_on_after(self._settings.shutdown_timeout_s, shield=True):
                await self._shut_down()

    async def _run_tasks(self) -> None:
        """The loop and its helpers; the first failure ends them all and is raised as is
        (not wrapped in a group: the task group is this class's business)."""
        try:
            async with anyio.create_task_group() as tasks:
                if self._commands is not None:
                    tasks.start_soon(self._follow_commands, self._commands)
                tasks.start_soon(self._commit_periodically)
                tasks.start_soon(self._watch_periodically)
                tasks.start_soon(self._halt_on_stop)
                tasks.start_soon(self._interrupt_fetch_on_halt)
                tasks.start_soon(self._dispatcher.run)
                await self._consume()
                await self._dispatcher.halt(self._settings.shutdown_timeout_s)
                tasks.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from group.exceptions[0].__cause__
            raise
        failure = self._dispatcher.failure
        if failure is not None:
            raise failure

    # -- the fetch loop ----------------------------------------------------------

    async def _consume(self) -> None:
        while not self._halt.is_set():
            self._lift_due_pauses()
            if not self._dispatcher.may_fetch:
                await self._dispatcher.wait_for_room(POLL_TIMEOUT_MS / 1000)
                continue
            batch = await self._fetch(min(self._settings.max_poll_records, self._dispatcher.room))
            if batch:
                self._progress()
                self._stats.last_fetch_at = time.time()
                self._dispatch(batch)

    async def _fetch(self, max_records: int) -> dict[TopicPartition, list[Any]]:
        """The next batch; empty when none came within the poll timeout or a halt cut in."""
        start = fetch_positions(self._consumer)
        try:
            with anyio.CancelScope() as self._fetching:
                batch: dict[TopicPartition, list[Any]] = await self._consumer.getmany(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=max_records
                )
                return batch
            return {}
        except FETCH_PARSE_ERRORS:
            return await self._recover(start)
        finally:
            self._fetching = None

    async def _recover(self, start: FetchStart) -> dict[TopicPartition, list[Any]]:
        """After a fetch aiokafka could not parse: the readable records (in order, from
        where each partition stood before the fetch), with what cannot be read skipped
        and dead-lettered first (actors.consumer.unparseable). Nothing is handed over
        from the failed fetch itself, and the recovery's records may exceed the room the
        fetch asked for by one record batch."""
        recovery = await recover(self._consumer, start)
        for part in recovery.unparseable:
            self._stats.unparseable += 1
            topic = self._settings.dead_letter_topic_for(part.topic)
            if self._dead_letters is not None and topic is not None:
                await self._dead_letters.write(
                    topic, part.dead_letter_record(), part.error, ErrorCategory.PERMANENT
                )
        return recovery.records

    def _dispatch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for tp, messages in batch.items():
            tracker = self._partitions.tracker(tp)
            if tracker is None or tracker.released:
                continue
            if self._tier_gate is not None and tp.topic in self._tier_gate:
                messages = self._tier_gate.admit(tp, messages)
                if not messages:
                    continue
            if tracker.rewound_by(messages[0].offset) and not tracker.in_flight:
                tracker = self._after_broker_reset(tp, messages[0].offset)
            self._stats.consumed += len(messages)
            self._dispatcher.add(tracker, messages)

    async def _halt_on_stop(self) -> None:
        await self._stop.wait()
        self._halt.set()
        self._dispatcher.wake()

    async def _interrupt_fetch_on_halt(self) -> None:
        """A fetch may wait for a rebalance indefinitely; a stop must not wait for it."""
        await self._halt.wait()
        if self._fetching is not None:
            self._fetching.cancel()

    async def _commit_periodically(self) -> None:
        """Commit finished offsets every interval, beside the loop: a slow commit never
        holds up the records, and a failed one is tried again at the next interval."""
        while True:
            await anyio.sleep(self._settings.commit_interval_s)
            if not is_group_member(self._consumer):
                continue  # rejoining: what it would commit is revoked on the join
            try:
                if await self._partitions.commit(self._commit_timeout()):
                    self._progress()
            except Exception as exc:
                if classify_exception(exc) is not ErrorCategory.TRANSIENT:
                    raise
                _log.warning("commit failed, will try again: %s: %s", type(exc).__name__, exc)

    def _commit_timeout(self) -> float:
        return self._settings.request_timeout_ms / 1000

    def _progress(self) -> None:
        self._last_progress = self._clock()

    # -- lag and the stall watchdog ------------------------------------------------

    async def _watch_periodically(self) -> None:
        """Refresh the lag gauges and judge stalls, beside the loop: a stalled loop
        (a fetch waiting for a coordinator that is gone) cannot judge itself."""
        timeout = self._settings.stall_timeout_s
        interval = min(_WATCH_INTERVAL_S, timeout / 4) if timeout is not None else _WATCH_INTERVAL_S
        while True:
            await anyio.sleep(interval)
            known = await self._refresh_lag()
            await self._reset_beyond_log_end(known)
            if timeout is None or self._dispatcher.in_flight:
                continue
            idle_for = self._clock() - self._last_progress
            if stalled(known.values(), idle_for=idle_for, timeout=timeout):
                lags = {f"{tp.topic}[{tp.partition}]": lag(p) for tp, p in known.items()}
                raise TransientError(
                    f"consumer stalled: nothing fetched or committed for {idle_for:.1f}s "
                    f"while partitions lag {lags}",
                    context={"group_id": self._settings.group_id},
                )

    async def _refresh_lag(self) -> dict[TopicPartition, PartitionProgress]:
        paused = self._consumer.paused()
        known: dict[TopicPartition, PartitionProgress] = {}
        for tp in self._partitions.owned():
            highwater = self._consumer.highwater(tp)
            position = await self._position(tp) if highwater is not None else None
            progress = PartitionProgress(highwater, position, paused=tp in paused)
            behind = lag(progress)
            if behind is not None:
                self._stats.lag[(tp.topic, tp.partition)] = behind
            known[tp] = progress
        return known

    async def _reset_beyond_log_end(self, known: dict[TopicPartition, PartitionProgress]) -> None:
        """Reset each partition whose position stayed above its log end (see
        actors.consumer.out_of_range); one with records in hand is judged once they finish."""
        for tp, progress in known.items():
            tracker = self._partitions.tracker(tp)
            if tracker is None or tracker.in_flight:
                continue
            position, highwater = progress.position, progress.highwater
            if position is None or highwater is None:  # unknown: this check tells nothing
                continue
            if not self._beyond_log_end.confirmed(tp, position, highwater):
                continue
            policy = self._settings.auto_offset_reset
            try:
                with anyio.fail_after(self._commit_timeout()):
                    offset = await reset_position(self._consumer, tp, policy, highwater)
            except IllegalStateError:  # revoked meanwhile
                continue
            except Exception as exc:
                if classify_exception(exc) is not ErrorCategory.TRANSIENT:
                    raise
                _log.warning(
                    "could not reset %s[%d], above its log end; will try again: %s: %s",
                    tp.topic,
                    tp.partition,
                    type(exc).__name__,
                    exc,
                )
                continue
            # A fresh tracker: its committed offset spoke of a log the broker no longer has.
            self._partitions.assign([tp])
            self._dispatcher.drop_released()
            self._progress()  # repositioned, like an assignment: the stall clock starts again
            _log.warning(
                "%s[%d]: position %d is above the log end %d (the broker lost records); "
                "reset to %d by auto_offset_reset=%s",
                tp.topic,
                tp.partition,
                position,
                highwater,
                offset,
                policy,
            )

    def _after_broker_reset(self, tp: TopicPartition, offset: int) -> PartitionOffsets:
        """A fresh tracker for a partition the client repositioned below what was tracked
        (OffsetOutOfRange from a broker that lost records): its commits spoke of that lost log."""
        self._partitions.assign([tp])
        _log.warning(
            "%s[%d]: the broker reset the position to %d, below what was consumed "
            "(it lost records); consuming on from there",
            tp.topic,
            tp.partition,
            offset,
        )
        tracker = self._partitions.tracker(tp)
        assert tracker is not None  # just assigned
        return tracker

    async def _position(self, tp: TopicPartition) -> int | None:
        with anyio.move_on_after(_POSITION_TIMEOUT_S):
            try:
                position: int = await self._consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile: no position to speak of
                return None
            return position
        return None

    # -- pause and resume --------------------------------------------------------

    async def _follow_commands(self, commands: MemoryObjectReceiveStream[PartitionCommand]) -> None:
        async for command in commands:
            if isinstance(command, PausePartitions):
                self._hold(command.reason)
            else:
                self._lift(command.reason)

    def _hold(self, reason: str, until: float | None = None) -> None:
        newly = self._state.pauses.hold(reason, until)
        self._partitions.pause_all()
        if newly:
            _log.warning("paused fetching: %s", reason)

    def _lift(self, reason: str) -> None:
        if self._state.pauses.lift(reason):
            self._partitions.resume_all()
            self._dispatcher.wake()
            self._progress()
            _log.info("resumed fetching: %s", reason)

    def _refused(self, refusal: Refusal) -> None:
        """A breaker refused a record: pause until its retry-after (the record waits)."""
        self._hold(refusal.breaker, until=self._clock() + refusal.retry_after)

    def _lift_due_pauses(self) -> None:
        """Lift the pauses whose breaker's retry-after has passed, and the handler breaker's
        pause once that breaker lets a trial through (even if the monitor's resume is late)."""
        pauses = self._state.pauses
        if self._tier_gate is not None:
            self._tier_gate.resume_due()
        for reason in pauses.due(self._clock()):
            self._lift(reason)
        breaker = self._state.breaker
        if breaker.name in pauses.reasons and breaker.retry_after() <= 0:
            self._lift(breaker.name)

    # -- rebalance -----------------------------------------------------------------

    async def on_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Drop the queued records of `revoked`, let their running ones finish (within the
        revocation deadline), commit what is finished of them (only while still a member:
        see actors.consumer.membership), let them go."""
        trackers = [t for t in map(self._partitions.tracker, revoked) if t is not None]
        for tracker in trackers:
            tracker.released = True
        self._dispatcher.drop_released()
        await self._dispatcher.wait_until_settled(
            trackers, self._settings.max_poll_interval_ms / 1000
        )
        try:
            if is_group_member(self._consumer):
                await self._partitions.commit(self._commit_timeout(), only=revoked)
            elif revoked:
                _log.warning(
                    "not committing revoked partitions: the group no longer knew this "
                    "member, so they were lost rather than handed over; they are "
                    "delivered again from the last commit"
                )
        except Exception as exc:
            _log.warning(
                "could not commit revoked partitions; their next owner starts from the "
                "last commit: %s: %s",
                type(exc).__name__,
                exc,
            )
        self._partitions.release(revoked)

    def on_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Track `assigned` afresh and re-apply any pause (aiokafka forgets pauses)."""
        self._partitions.assign(assigned)
        self._dispatcher.drop_released()
        self._beyond_log_end.forget(assigned)
        self._progress()
        _log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))

    # -- exit ----------------------------------------------------------------------

    async def _shut_down(self) -> None:
        steps: list[tuple[str, Callable[[], Any]]] = []
        if is_group_member(self._consumer):
            steps.append(("commit", lambda: self._partitions.commit(self._commit_timeout())))
        if self._dead_letters is not None:
            steps.append(("stop the dead-letter producer", self._dead_letters.stop))
        steps.append(("leave the group", self._leave_group))
        for what, step in steps:
            try:
                await step()
            except Exception as exc:
                _log.warning("on exit, could not %s: %s: %s", what, type(exc).__name__, exc)

    async def _leave_group(self) -> None:
        """`consumer.stop()`, surviving an aiokafka quirk.

        With the broker unreachable, aiokafka's fetcher cancels a fetch that is waiting
        out its retry backoff and then awaits it, so the fetch's CancelledError escapes
        `stop()` although nobody cancelled us, and the network client is left open. That
        error is swallowed here (a real cancellation of this task is re-raised) and the
        close is finished.
        """
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            await self._consumer._client.close()
