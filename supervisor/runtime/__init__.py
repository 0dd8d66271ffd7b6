"""The supervision runtime: OTP-style supervision for anyio tasks, decided by the error taxonomy.

Generic: it imports only `core` (for the taxonomy), never the actors or the application,
and `supervisor` re-exports its public names. This docstring is the one home of the
decision table; the README and other docstrings point here.

    from supervisor import ChildSpec, Restart, Strategy, Supervisor

    root = Supervisor(
        [
            ChildSpec("token_refresher", factory=TokenRefresher),
            ChildSpec("consumer", factory=lambda: KafkaConsumer(...), shutdown_timeout=10),
            ChildSpec("workers", workers.run, shutdown_timeout=math.inf),  # a nested Supervisor
        ],
        strategy=Strategy.REST_FOR_ONE,
        on_auth_failure=ask_for_fresh_token,
    )
    await root.run()  # raises EscalationError when it gives up

Children. A child is an async callable `run(*, task_status)` that calls
`task_status.started()` once ready, given as `ChildSpec(name, run)`, or a
factory `ChildSpec(name, factory=Cls)` whose product has such a `run`; a
factory is called for every start, so each restart gets a fresh object.
Children are started in order, each after the previous one reported started;
the supervisor reports started to its own parent after all of them.

Decisions (how a child's run ended -> what happens; the category comes from
`core.errors.classify_exception`, where the most severe member of an exception
group decides):

    cancellation (the supervisor stopped it)  not a failure, nothing to decide
    normal return                             restart only if Restart.ALWAYS
    TRANSIENT or UNKNOWN                      restart after the backoff; counts
    AUTH                                      on_auth_failure(name, exc), backoff, restart; counts
    CIRCUIT_OPEN                              wait max(exc.retry_after, backoff), restart;
                                              not counted (a breaker already paces it)
    PERMANENT                                 escalate at once (any restart policy)
    restart beyond max_restarts in period     escalate (OTP intensity; normal-return
                                              restarts of ALWAYS children count too)

Restart policy ON_FAILURE restarts only after an exception, NEVER not at all.
The strategy says who restarts with the failed child: ONE_FOR_ONE alone,
ONE_FOR_ALL everyone, REST_FOR_ONE it and the children started after it; the
others are stopped first in reverse start order and all restart in start order
(a sibling with policy NEVER stopped this way is not restarted, as in OTP; a
child that already finished for good stays finished). Backoff
(`Backoff(base, max, factor, jitter)`) is per child and starts afresh once a
child has run `stable_after` seconds. A startup failure is judged like any
other exit (a dependency that is not up yet is TRANSIENT).

Escalation stops every child (reverse start order) and raises `EscalationError`
(`.supervisor`, `.child`, `.category`, `.reason`, `__cause__`; one-line
`str()`). It is a PipelineError with the child's category, so a parent
supervisor escalates further on PERMANENT and otherwise restarts the nested
supervisor like any failed child.

Stopping a child (a sibling's restart, escalation, `Supervisor.stop()`, or
cancellation of the task running the supervisor): if it has reported started
and the object behind its `run` (the factory's product, or the owner of a bound
method: `ChildSpec("sub", sub.run)`) has a `stop()` method, sync or async,
`stop()` is called and the child has until `shutdown_timeout` to return from
`run`; then, or at once without such a method, its cancel scope is cancelled.
Actors therefore implement `stop()` to finish their work and return (flush,
commit); cancellation is the fallback. A nested supervisor's `stop()` stops its
own children the same way, so give it `shutdown_timeout=math.inf`.

Observability: every start, exit, restart, stop and escalation is a
`SupervisorEvent`, logged on logger "supervisor" with structured `extra`
fields (event, supervisor, child, category, delay, restart_count) and passed to
`on_event`; `Supervisor.stats()` returns a frozen `SupervisorStats`.
"""

from supervisor.runtime._backoff import Backoff
from supervisor.runtime._errors import EscalationError
from supervisor.runtime._events import EventKind, SupervisorEvent
from supervisor.runtime._spec import Actor, ChildSpec, Restart, RunFunction
from supervisor.runtime._stats import ChildStats, SupervisorStats
from supervisor.runtime._strategy import Strategy
from supervisor.runtime._supervisor import AuthFailureHook, EventHook, Supervisor

__all__ = [
    "Actor",
    "AuthFailureHook",
    "Backoff",
    "ChildSpec",
    "ChildStats",
    "EscalationError",
    "EventHook",
    "EventKind",
    "Restart",
    "RunFunction",
    "Strategy",
    "Supervisor",
    "SupervisorEvent",
    "SupervisorStats",
]
