"""The health endpoint as a supervised child, and what /healthz and /readyz decide.

/healthz (liveness) answers ok while the root supervisor runs: the event loop answered
the request, and the supervisor restarts whatever else fails. A crashed or restarting
actor is the supervisor's business, not a reason for the orchestrator to kill the
process, so it does not fail liveness.

/readyz (readiness) is ok when this process is doing its work: the consumer actor is
running and has partitions assigned, every token scope has a token the cache serves
(when auth is on), and no circuit breaker is open. Each failed condition is one line
of the body. A group member with no partition (more processes than partitions) is
reported not ready, honestly: it consumes nothing.
"""

from __future__ import annotations

import logging

import anyio
from anyio.abc import TaskStatus

from core.resilience import CircuitState
from supervisor.pipeline.environment import check_health_address
from supervisor.pipeline.health_server import Check, HealthServer
from supervisor.pipeline.observation import Observation

__all__ = ["HealthEndpoint", "liveness", "readiness"]

_log = logging.getLogger("supervisor.health")


def liveness(observation: Observation) -> Check:
    """Alive while the root supervisor runs."""
    if observation.root_running:
        return Check(True)
    return Check(False, ("the root supervisor is not running",))


def readiness(observation: Observation, consumer: str) -> Check:
    """Ready when the `consumer` actor consumes, tokens are fresh and no breaker is open."""
    reasons: list[str] = []
    child = observation.actors.get(consumer)
    if child is None or not child.running:
        reasons.append(f"actor {consumer!r} is not running")
    if not observation.consumer.assigned:
        reasons.append("no partitions assigned")
    reasons.extend(
        f"no fresh token for {scope}"
        for scope, token in observation.tokens.items()
        if not token.fresh
    )
    reasons.extend(
        f"circuit breaker {name!r} is open"
        for name, state in observation.breakers.items()
        if state is CircuitState.OPEN
    )
    if reasons:
        return Check(False, tuple(reasons))
    assigned = ", ".join(
        f"{topic}[{partition}]" for topic, partition in sorted(observation.consumer.assigned)
    )
    return Check(True, (f"assigned: {assigned}",))


class HealthEndpoint:
    """Runs a `HealthServer` as a child: started once it listens; a restart keeps the port.

    With port 0 the first start binds any free port; `port` tells which, and later
    starts bind that same port again.
    """

    def __init__(self, server: HealthServer) -> None:
        self._server = server

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return self._server.port

    def check_port(self) -> None:
        """Raise ConfigError unless `host:port` can be listened on right now.

        A port something else holds is the machine's fault, not a failure to retry:
        checked before anything starts, it exits 2 naming the port instead of
        escalating later. Port 0 is bound too: it proves the host is this machine's.
        """
        check_health_address(self._server.host, self._server.port)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled."""
        async with anyio.create_task_group() as group:
            port = await group.start(self._server.run)
            _log.info(
                "health endpoint on http://%s:%d (/healthz, /readyz, /metrics)",
                self._server.host,
                port,
                extra={"event": "health_listening", "host": self._server.host, "port": port},
            )
            task_status.started()
