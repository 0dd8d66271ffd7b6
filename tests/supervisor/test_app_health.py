"""/healthz and /readyz decisions: one reason per failed condition, ready only when none fails."""

from __future__ import annotations

from app_observation_strategies import observations
from hypothesis import given, settings

from core.resilience import CircuitState
from supervisor.app_health import liveness, readiness
from supervisor.app_observation import Observation

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
