"""/healthz and /readyz decisions: one reason per failed condition, ready only when none fails."""

from __future__ import annotations

import re
import socket

import anyio
import pytest
from hypothesis import given, settings
from observation_strategies import observations

from core.resilience import CircuitState
from supervisor.pipeline.config import ConfigError
from supervisor.pipeline.health import HealthEndpoint, liveness, readiness
from supervisor.pipeline.health_server import Check, HealthServer
from supervisor.pipeline.observation import Observation

CONSUMER = "kafka_consumer"


@settings(max_examples=50)
@given(observations)
def test_ready_exactly_when_every_condition_holds(observation: Observation) -> None:
    """Ready iff the consumer runs with partitions, tokens are fresh and no breaker is open."""
    child = observation.actors.get(CONSUMER)
    failed = [
        child is None or not child.running,
        not observation.consumer.assigned,
        *(not token.fresh for token in observation.tokens.values()),
        *(state is CircuitState.OPEN for state in observation.breakers.values()),
    ]
    check = readiness(observation, CONSUMER)
    assert check.ok == (not any(failed))
    if check.ok:
        assert check.reasons[0].startswith("assigned: ")
    else:
        assert len(check.reasons) == sum(failed)


@settings(max_examples=20)
@given(observations)
def test_alive_exactly_while_the_root_supervisor_runs(observation: Observation) -> None:
    """Liveness follows the root supervisor only; failing actors do not make it fail."""
    check = liveness(observation)
    assert check.ok == observation.root_running
    assert check.body().startswith(b"ok\n" if check.ok else b"not ok\n")


def _endpoint(port: int, host: str = "127.0.0.1") -> HealthEndpoint:
    return HealthEndpoint(
        HealthServer(
            host,
            port,
            live=lambda: Check(True),
            ready=lambda: Check(True),
            metrics=lambda: (b"", "text/plain"),
        )
    )


def test_a_taken_port_is_a_configuration_error_naming_port_host_and_cause(
    taken_port: int,
) -> None:
    """A port another socket listens on fails the check with the field, the port and errno."""
    with pytest.raises(ConfigError) as raised:
        _endpoint(taken_port).check_port()
    assert raised.value.field == "health.port"
    assert str(raised.value) == (
        f"health.port: {taken_port} on 127.0.0.1 cannot be bound: [Errno 98] Address already in use"
    )


def test_a_host_that_does_not_resolve_is_a_configuration_error() -> None:
    """A health.host the resolver does not know is named as the host, not the port."""
    with pytest.raises(
        ConfigError, match=re.escape("health.host: 'kp-no-such-host.invalid' does not resolve")
    ):
        _endpoint(8080, host="kp-no-such-host.invalid").check_port()


@pytest.mark.anyio
async def test_a_free_port_passes_the_check_and_is_left_free_for_the_server() -> None:
    """The check holds nothing: the endpoint then listens on the very port it checked."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = _endpoint(port)
    endpoint.check_port()
    async with anyio.create_task_group() as group:
        await group.start(endpoint.run)
        assert endpoint.port == port
        group.cancel_scope.cancel()


def test_port_0_passes_the_check_on_an_address_of_this_machine() -> None:
    """Port 0 asks for any free port, which binding finds on a local address."""
    endpoint = _endpoint(0)
    endpoint.check_port()
    assert endpoint.port == 0


def test_port_0_is_bind_checked_too() -> None:
    """Port 0 on an address that is not this machine's fails the check (EADDRNOTAVAIL)."""
    with pytest.raises(ConfigError, match=r"^health\.port: 0 on 192\.0\.2\.1 cannot be bound"):
        _endpoint(0, host="192.0.2.1").check_port()
