"""kafka-pipeline's supervision and application layer.

    supervisor.runtime   the generic OTP-style supervision runtime (imports only `core`);
                         its package docstring is the one home of the decision table
    supervisor.pipeline  the application: configuration, wiring of the actor tree,
                         process lifecycle, health and metrics
    supervisor.demo      the embedded demo (`kafka-pipeline demo`)
    supervisor.testing   broker launchers and helpers for testing handlers and pipelines
    supervisor.cli       the `kafka-pipeline` console script (also `python -m supervisor`)

The runtime's public names are re-exported here, so `from supervisor import Supervisor`
is the import users write.
"""

from supervisor.runtime import (
    Actor,
    AuthFailureHook,
    Backoff,
    ChildSpec,
    ChildStats,
    EscalationError,
    EventHook,
    EventKind,
    Restart,
    RunFunction,
    Strategy,
    Supervisor,
    SupervisorEvent,
    SupervisorStats,
)

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
