"""The demo's notes and status line, read from the same Observation as /metrics."""

from __future__ import annotations

from hypothesis import given, settings
from observation_strategies import observations

from supervisor.demo.events import DemoLedger
from supervisor.demo.status import Notes, restarts_by_actor, status_line
from supervisor.pipeline.observation import Observation


@settings(max_examples=30)
@given(observations)
def test_notes_tell_each_restart_and_the_first_dead_letter_once(observation: Observation) -> None:
    """Fresh notes report each restarted actor and a dead letter; the same state again: none."""
    notes = Notes("demo.events.dlq")
    first = notes.update(observation)
    restarted = restarts_by_actor(observation)
    assert [n for n in first if "restarted" in n] == [
        f">> supervisor restarted {name} (exit: {observation.actors[name].last_exit};"
        f" restart {count}); consumption resumes from the last commit"
        for name, count in restarted.items()
    ]
    assert any("demo.events.dlq" in n for n in first) == (observation.consumer.dead_lettered > 0)
    assert notes.update(observation) == []


@settings(max_examples=30)
@given(observations)
def test_the_status_line_is_one_line_of_the_observed_counters(observation: Observation) -> None:
    """The line shows consumed, handled, dead-lettered, deduplicated and the restart total."""
    line = status_line(observation, DemoLedger(), elapsed=1.5)
    consumer = observation.consumer
    assert len(line.splitlines()) == 1
    for part in (
        f"consumed {consumer.consumed}",
        f"handled {consumer.handled}",
        f"dead-lettered {consumer.dead_lettered}",
        f"deduplicated {consumer.deduplicated}",
        f"restarts {sum(restarts_by_actor(observation).values())}",
    ):
        assert part in line


@settings(max_examples=100)
@given(observations)
def test_the_lag_is_shown_only_when_it_is_known(observation: Observation) -> None:
    """A running consumer that measured every assigned partition shows their summed lag;
    otherwise (restarting, joining, not yet measured) the line says `lag ?`, never 0."""
    consumer = observation.consumer
    actor = observation.actors.get("kafka_consumer")
    known = (
        actor is not None
        and actor.running
        and bool(consumer.assigned)
        and all(partition in consumer.lag for partition in consumer.assigned)
    )
    line = status_line(observation, DemoLedger(), elapsed=1.5)
    if known:
        total = sum(consumer.lag[partition] for partition in consumer.assigned)
        assert line.endswith(f"| lag {total}")
    else:
        assert line.endswith("| lag ?")
