"""The Supervisor: runs children, watches their exits, carries out the planner's decisions.

Structure: one reactor loop per run reads a single inbox (child started, child
ended, restart delay elapsed, stop requested) and handles one message at a
time, so the supervision state is only ever changed by one task. The decisions
themselves come from the pure `RestartPlanner`; this module only executes them:
stopping children (reverse start order, by the protocol in `_child`), waiting
out delays, and starting children in start order.

Starting: children are started one after another in start order; each must
report started before the next is started, and the supervisor reports started
to its own parent once every child has started (or finished for good).

Startup failures: a child that fails before reporting started is judged like
any other exit, not as a fatal start error as in OTP. A broker or identity
provider that is not up yet is TRANSIENT and deserves the same backoff as at
any later time; a PERMANENT startup failure (bad configuration) still
escalates at once, and a failure loop still escalates through the intensity.
Children after the failed one wait until it has started.

Ending: `run()` returns once every child has finished for good; raises
`EscalationError` after stopping every child when it escalates; after `stop()`
it stops every child in reverse start order and returns, or raises an
ExceptionGroup of the errors children raised while being stopped; when the
task running it is cancelled it stops its children the same way (shielded),
logs such errors, and lets the cancellation propagate. Errors raised by
siblings stopped for a restart are logged (as OTP logs shutdown errors) and the
restart goes ahead; during an escalation they are attached to the
EscalationError as notes. No child task outlives `run()`.

Races: if a child stopped by the supervisor had already failed by itself (two
crashes at the same moment), its error is treated as an error raised while
stopping, not as a second decision.

`stop()` and `stats()` must be called from the event loop's thread.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from core.errors import classify_exception
from core.types import ErrorCategory, ErrorClassifier
from supervisor.runtime._backoff import Backoff
from supervisor.runtime._child import Incarnation
from supervisor.runtime._clock import Clock, Sleep
from supervisor.runtime._errors import EscalationError
from supervisor.runtime._events import EventKind, SupervisorEvent
from supervisor.runtime._exits import exit_of
from supervisor.runtime._intensity import RestartIntensity
from supervisor.runtime._planner import Action, Plan, RestartPlanner
from supervisor.runtime._spec import ChildSpec
from supervisor.runtime._stats import StatsRecorder, SupervisorStats
from supervisor.runtime._strategy import Strategy

__all__ = ["AuthFailureHook", "EventHook", "Supervisor"]

_log = logging.getLogger("supervisor")

AuthFailureHook = Callable[[str, BaseException], object]
"""Called with the child's name and its exception before an AUTH restart; may be async."""

EventHook = Callable[[SupervisorEvent], None]
"""Receives every event, e.g. to update metrics; must not block."""


@dataclass(frozen=True, slots=True)
class _Settings:
    name: str
    strategy: Strategy
    max_restarts: int
    period: float
    backoff: Backoff
    stable_after: float
    on_auth_failure: AuthFailureHook | None
    on_event: EventHook | None
    clock: Clock
    sleep: Sleep
    classify: Callable[[BaseException], ErrorCategory]


class Supervisor:
    """An OTP-style supervisor for anyio tasks, driven by the error taxonomy.

    `max_restarts` restarts within `period` seconds are allowed (OTP's
    intensity); `backoff` spaces them out, per child, and a child that ran
    `stable_after` seconds (default: `period`) starts its backoff afresh.
    `clock` and `sleep` default to anyio's and exist for virtual-time tests;
    `classifier` defaults to `core.errors.classify_exception`.
    """

    def __init__(
        self,
        children: Iterable[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
        backoff: Backoff = Backoff(),  # noqa: B008 (frozen, hence safe to share)
        name: str = "root",
        on_auth_failure: AuthFailureHook | None = None,
        on_event: EventHook | None = None,
        stable_after: float | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        classifier: ErrorClassifier | None = None,
    ) -> None:
        self._specs = tuple(children)
        names = [spec.name for spec in self._specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"supervisor {name!r}: duplicate child names {duplicates}")
        RestartIntensity(max_restarts, period)  # validates both, before any run
        stable = period if stable_after is None else stable_after
        if not stable >= 0:
            raise ValueError(f"stable_after must be >= 0 seconds, got {stable_after!r}")
        self._settings = _Settings(
            name=name,
            strategy=strategy,
            max_restarts=max_restarts,
            period=period,
            backoff=backoff,
            stable_after=stable,
            on_auth_failure=on_auth_failure,
            on_event=on_event,
            clock=clock or anyio.current_time,
            sleep=sleep or anyio.sleep,
            classify=classifier.classify if classifier is not None else classify_exception,
        )
        self._stats = StatsRecorder(name, names)
        self._active: _Run | None = None

    @property
    def name(self) -> str:
        """The name used in events, logs and escalation messages."""
        return self._settings.name

    @property
    def children(self) -> tuple[ChildSpec, ...]:
        """The child specifications, in start order."""
        return self._specs

    def stats(self) -> SupervisorStats:
        """A frozen snapshot of the counters of this supervisor and its children."""
        return self._stats.snapshot()

    def stop(self) -> None:
        """Ask the run in progress to stop every child gracefully and return; else no effect."""
        if self._active is not None:
            self._active.request_stop()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the children and supervise them until done, stopped, or escalated."""
        if self._active is not None:
            raise RuntimeError(f"supervisor {self.name!r} is already running")
        escalation: EscalationError | None = None
        stop_errors: list[Exception] = []
        send, receive = anyio.create_memory_object_stream[_Message](math.inf)
        with send, receive:
            async with anyio.create_task_group() as group:
                run = self._active = _Run(
                    self._settings, self._specs, self._stats, group, send, receive
                )
                try:
                    await run.serve(task_status)
                except EscalationError as exc:
                    escalation = exc
                finally:
                    with anyio.CancelScope(shield=True):
                        stop_errors = await run.shutdown()
                    self._active = None
        if escalation is not None:
            raise escalation
        if stop_errors:
            raise ExceptionGroup(
                f"supervisor {self.name!r}: children raised while being stopped", stop_errors
            )

    def __repr__(self) -> str:
        return f"Supervisor(name={self.name!r}, strategy={self._settings.strategy.name})"


@dataclass(frozen=True, slots=True)
class _Started:
    incarnation: Incarnation


@dataclass(frozen=True, slots=True)
class _Ended:
    incarnation: Incarnation


@dataclass(frozen=True, slots=True)
class _Due:
    job: _Job


@dataclass(frozen=True, slots=True)
class _Wake:
    """Makes the reactor look at its flags (a stop was requested)."""


_Message = _Started | _Ended | _Due | _Wake


class _Status(enum.Enum):
    PENDING = "pending"
    """Waiting in a job to be started."""
    STARTING = "starting"
    RUNNING = "running"
    DONE = "done"
    """Finished for good in this run."""


@dataclass(eq=False, slots=True)
class _Job:
    """Children to start one after another, once the delay before them has elapsed."""

    names: deque[str]
    armed: bool
    current: _Child | None = None
    """The child of this job that is starting now."""
    timer: anyio.CancelScope | None = None
    """Scope of the task waiting out the delay, if there is one."""


@dataclass(eq=False, slots=True)
class _Child:
    spec: ChildSpec
    status: _Status = _Status.PENDING
    incarnation: Incarnation | None = None
    job: _Job | None = None
    """The job waiting for this child to report started."""
    restarts: int = 0


class _Run:
    """The state of one `Supervisor.run()`; only its reactor task changes it."""

    def __init__(
        self,
        settings: _Settings,
        specs: tuple[ChildSpec, ...],
        stats: StatsRecorder,
        group: TaskGroup,
        send: MemoryObjectSendStream[_Message],
        receive: MemoryObjectReceiveStream[_Message],
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._group = group
        self._send = send
        self._inbox = receive
        self._children = {spec.name: _Child(spec) for spec in specs}
        self._order = tuple(self._children)
        self._jobs: list[_Job] = []
        self._stop_requested = False
        self._reported_started = False
        self._planner = RestartPlanner(
            {spec.name: spec.restart for spec in specs},
            strategy=settings.strategy,
            intensity=RestartIntensity(settings.max_restarts, settings.period),
            backoff=settings.backoff,
            stable_after=settings.stable_after,
        )

    def request_stop(self) -> None:
        self._stop_requested = True
        self._send.send_nowait(_Wake())

    async def serve(self, task_status: TaskStatus[None]) -> None:
        self._add_job(self._order, delay=0.0)
        while True:
            if not self._reported_started and all(
                c.status in (_Status.RUNNING, _Status.DONE) for c in self._children.values()
            ):
                self._reported_started = True
                _log.info(
                    "supervisor %r started %d children",
                    self._settings.name,
                    len(self._order),
                    extra={"event": "supervisor_started", "supervisor": self._settings.name},
                )
                task_status.started()
            if self._stop_requested:
                return
            if all(c.status is _Status.DONE for c in self._children.values()):
                return
            message = await self._inbox.receive()
            if isinstance(message, _Started):
                self._on_started(message.incarnation)
            elif isinstance(message, _Ended):
                await self._on_ended(message.incarnation)
            elif isinstance(message, _Due):
                self._on_due(message.job)

    async def shutdown(self) -> list[Exception]:
        """Cancel pending restarts, then stop every child with a task in reverse start order."""
        for job in self._jobs:
            self._cancel_timer(job)
        self._jobs.clear()
        running = [n for n in reversed(self._order) if self._children[n].incarnation is not None]
        return [error for _, error in await self._stop_each(running)]

    # -- messages ---------------------------------------------------------------------------

    def _on_started(self, incarnation: Incarnation) -> None:
        child = self._children[incarnation.spec.name]
        if child.incarnation is not incarnation:
            return
        child.status = _Status.RUNNING
        self._planner.started(child.spec.name, self._settings.clock())
        self._emit(EventKind.STARTED, child)
        job = self._release_job(child)
        if job is not None:
            self._advance(job)

    async def _on_ended(self, incarnation: Incarnation) -> None:
        child = self._children[incarnation.spec.name]
        if child.incarnation is not incarnation:
            return
        child.incarnation = None
        job = self._release_job(child)
        error = incarnation.error
        exit = exit_of(error, self._settings.classify)
        self._emit(EventKind.EXITED, child, category=exit.category, error=error)
        others = [c for c in self._children.values() if c is not child]
        plan = self._planner.exited(
            child.spec.name,
            exit,
            self._settings.clock(),
            active={c.spec.name for c in others if c.incarnation is not None},
            pending={c.spec.name for c in others if c.status is _Status.PENDING},
        )
        if plan.action is Action.ESCALATE:
            await self._escalate(child, plan, exit.category, error)
        elif plan.action is Action.FINISH:
            child.status = _Status.DONE
            if job is not None:
                self._advance(job)
        else:
            hook = self._settings.on_auth_failure
            before = None
            if plan.refresh_auth and hook is not None and error is not None:
                before = functools.partial(_call_hook, hook, child.spec.name, error)
            await self._restart(child, plan, tuple(job.names) if job is not None else (), before)

    def _on_due(self, job: _Job) -> None:
        if job in self._jobs:
            job.armed = True
            self._advance(job)

    # -- decisions --------------------------------------------------------------------------

    async def _restart(
        self,
        failed: _Child,
        plan: Plan,
        leftovers: tuple[str, ...],
        before: Callable[[], object] | None,
    ) -> None:
        await self._stop_each(plan.stop)
        for name in plan.drop:
            self._children[name].status = _Status.DONE
        # Children after a child that failed while starting wait for it, as at first start.
        names = set(plan.restart) | set(leftovers)
        for job in list(self._jobs):
            job.names = deque(n for n in job.names if n not in names)
            if job.current is None:
                if job.names:
                    self._advance(job)
                else:
                    self._discard(job)
        ordered = [n for n in self._order if n in names]
        # Children that were only waiting to start join the job without counting as restarted.
        restarted = {failed.spec.name, *plan.stop} - set(plan.drop)
        for name in ordered:
            child = self._children[name]
            child.status = _Status.PENDING
            if name in restarted:
                child.restarts += 1
                self._emit(EventKind.RESTARTING, child, delay=plan.delay)
        self._add_job(ordered, plan.delay, before)

    async def _escalate(
        self,
        child: _Child,
        plan: Plan,
        category: ErrorCategory | None,
        error: Exception | None,
    ) -> None:
        stop_errors = await self._stop_each(plan.stop)
        for job in self._jobs:
            self._cancel_timer(job)
        self._jobs.clear()
        escalation = EscalationError(
            supervisor=self._settings.name,
            child=child.spec.name,
            category=category,
            reason=plan.reason,
            cause=error,
        )
        for name, stop_error in stop_errors:
            escalation.add_note(
                f"while stopping child {name!r}: {type(stop_error).__name__}: {stop_error}"
            )
        self._emit(EventKind.ESCALATED, child, category=category, error=error)
        raise escalation

    # -- mechanics --------------------------------------------------------------------------

    def _add_job(
        self,
        names: Iterable[str],
        delay: float,
        before: Callable[[], object] | None = None,
    ) -> None:
        job = _Job(deque(names), armed=delay <= 0 and before is None)
        self._jobs.append(job)
        if job.armed:
            self._advance(job)
        else:
            job.timer = anyio.CancelScope()
            self._group.start_soon(self._arm_later, job, job.timer, delay, before)

    async def _arm_later(
        self,
        job: _Job,
        timer: anyio.CancelScope,
        delay: float,
        before: Callable[[], object] | None,
    ) -> None:
        with timer:
            if before is not None:
                await _maybe_await(before())
            await self._settings.sleep(delay)
            self._send.send_nowait(_Due(job))

    def _advance(self, job: _Job) -> None:
        """Start the next child of `job` if it may start now; forget the job when done."""
        if not job.armed or job.current is not None:
            return
        if not job.names:
            self._discard(job)
            return
        child = self._children[job.names.popleft()]
        incarnation = Incarnation(
            child.spec,
            on_started=lambda inc: self._send.send_nowait(_Started(inc)),
            on_ended=lambda inc: self._send.send_nowait(_Ended(inc)),
        )
        child.incarnation, child.status, child.job, job.current = (
            incarnation,
            _Status.STARTING,
            job,
            child,
        )
        self._group.start_soon(incarnation.run, name=f"{self._settings.name}/{child.spec.name}")

    def _release_job(self, child: _Child) -> _Job | None:
        job, child.job = child.job, None
        if job is not None:
            job.current = None
        return job

    def _discard(self, job: _Job) -> None:
        self._cancel_timer(job)
        if job in self._jobs:
            self._jobs.remove(job)

    @staticmethod
    def _cancel_timer(job: _Job) -> None:
        if job.timer is not None:
            job.timer.cancel()

    async def _stop_each(self, names: Iterable[str]) -> list[tuple[str, Exception]]:
        """Stop the named children one by one, in the given order; the errors they raised."""
        errors: list[tuple[str, Exception]] = []
        for name in names:
            child = self._children[name]
            incarnation = child.incarnation
            if incarnation is None:
                continue
            with anyio.CancelScope(shield=True):
                raised = await incarnation.stop(self._settings.sleep)
            child.incarnation = None
            child.status = _Status.PENDING
            self._release_job(child)
            self._emit(EventKind.STOPPED, child, error=raised[0] if raised else None)
            if incarnation.timed_out:
                _log.warning(
                    "child %r did not stop within %gs; cancelled",
                    name,
                    child.spec.shutdown_timeout,
                    extra={
                        "event": "child_stop_timeout",
                        "supervisor": self._settings.name,
                        "child": name,
                    },
                )
            for error in raised:
                _log.error(
                    "child %r raised while being stopped: %s: %s",
                    name,
                    type(error).__name__,
                    error,
                    exc_info=error,
                    extra={
                        "event": "child_stop_failed",
                        "supervisor": self._settings.name,
                        "child": name,
                    },
                )
            errors.extend((name, error) for error in raised)
        return errors

    def _emit(
        self,
        kind: EventKind,
        child: _Child,
        *,
        category: ErrorCategory | None = None,
        delay: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        event = SupervisorEvent(
            kind=kind,
            supervisor=self._settings.name,
            child=child.spec.name,
            at=self._settings.clock(),
            category=category,
            delay=delay,
            restart_count=child.restarts,
            error=error,
        )
        self._stats.record(event)
        _log_event(event)
        if self._settings.on_event is not None:
            try:
                self._settings.on_event(event)
            except Exception:
                _log.exception(
                    "on_event hook failed",
                    extra={"event": "supervisor_hook_failed", "supervisor": self._settings.name},
                )


async def _call_hook(hook: AuthFailureHook, child: str, error: Exception) -> None:
    """Run the on_auth_failure hook; its failure is logged and noted on the child's error.

    The restart goes ahead regardless: it counts toward the intensity, so a
    refresh that keeps failing ends in an escalation carrying this note.
    """
    try:
        await _maybe_await(hook(child, error))
    except Exception as hook_error:
        _log.exception(
            "on_auth_failure hook failed for child %r",
            child,
            extra={"event": "auth_hook_failed", "child": child},
        )
        error.add_note(f"on_auth_failure hook failed: {type(hook_error).__name__}: {hook_error}")


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result


_EXITS = (EventKind.EXITED, EventKind.ESCALATED)
_LEVELS = {
    EventKind.STARTED: logging.INFO,
    EventKind.RESTARTING: logging.INFO,
    EventKind.STOPPED: logging.INFO,
    EventKind.EXITED: logging.INFO,
    EventKind.ESCALATED: logging.ERROR,
}


def _log_event(event: SupervisorEvent) -> None:
    level = _LEVELS[event.kind]
    if event.error is not None and event.kind is not EventKind.ESCALATED:
        level = logging.WARNING
    if not _log.isEnabledFor(level):
        return
    text = f"child {event.child!r} {event.kind.value}"
    if event.kind in _EXITS:
        text += f" ({event.label})"
    if event.delay is not None:
        text += f" in {event.delay:.3f}s (restart {event.restart_count})"
    if event.error is not None:
        text += f": {type(event.error).__name__}: {event.error}"
    _log.log(
        level,
        "%s",
        text,
        exc_info=event.error if event.kind is EventKind.EXITED else None,
        extra={
            "event": f"child_{event.kind.value}",
            "supervisor": event.supervisor,
            "child": event.child,
            "category": event.label if event.kind in _EXITS else None,
            "delay": event.delay,
            "restart_count": event.restart_count,
        },
    )
