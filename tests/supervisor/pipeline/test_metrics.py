"""/metrics: exactly the names of the METRICS table, with the values the actors' counters hold."""

from __future__ import annotations

import re

from hypothesis import given, settings
from observation_strategies import observations
from prometheus_client.parser import text_string_to_metric_families

from supervisor.pipeline.metrics import BREAKER_STATE_VALUES, METRICS, Kind, MetricsExporter
from supervisor.pipeline.observation import Observation

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _render(observation: Observation) -> str:
    body, content_type = MetricsExporter(lambda: observation).render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    return body.decode()


def _declared(text: str) -> dict[str, str]:
    """The `# TYPE name kind` lines of an exposition, as {name: kind}."""
    found = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            found[name] = kind
    return found


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_table_names_are_unique_and_follow_prometheus_conventions() -> None:
    """Names are unique, prefixed, valid; counters end in _total and nothing else does."""
    names = [spec.name for spec in METRICS]
    assert len(names) == len(set(names))
    for spec in METRICS:
        assert NAME.fullmatch(spec.name)
        assert spec.name.startswith("kafka_pipeline_")
        assert spec.name.endswith("_total") == (spec.kind is Kind.COUNTER)
        assert spec.help.strip()
        assert all(LABEL.fullmatch(label) for label in spec.labels)


@settings(max_examples=30)
@given(observations)
def test_the_exposition_declares_exactly_the_table(observation: Observation) -> None:
    """Every scrape declares each metric of the table with its type, and nothing else."""
    assert _declared(_render(observation)) == {spec.name: spec.kind.value for spec in METRICS}


@settings(max_examples=30)
@given(observations)
def test_sample_values_are_the_observed_counters(observation: Observation) -> None:
    """Counters, gauges and the latency summary carry the values of the observation."""
    samples = _samples(_render(observation))
    consumer = observation.consumer
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
        ("kafka_pipeline_records_consumed_total", ()): consumer.consumed,
        ("kafka_pipeline_records_handled_total", ()): consumer.handled,
        ("kafka_pipeline_records_failed_total", ()): consumer.failed,
        ("kafka_pipeline_records_dead_lettered_total", ()): consumer.dead_lettered,
        ("kafka_pipeline_records_deduplicated_total", ()): consumer.deduplicated,
        ("kafka_pipeline_commits_total", ()): consumer.commits,
        ("kafka_pipeline_commit_failures_total", ()): consumer.commit_failures,
        ("kafka_pipeline_handler_seconds_count", ()): consumer.handler_seconds_count,
        ("kafka_pipeline_handler_seconds_sum", ()): consumer.handler_seconds_sum,
        ("kafka_pipeline_partitions_assigned", ()): len(consumer.assigned),
        ("kafka_pipeline_records_in_flight", ()): consumer.in_flight,
        ("kafka_pipeline_records_queued", ()): consumer.queued,
        ("kafka_pipeline_log_records_dropped_total", ()): observation.log.dropped,
    }
    for (topic, partition), lag in consumer.lag.items():
        labels = (("partition", str(partition)), ("topic", topic))
        expected[("kafka_pipeline_consumer_lag", labels)] = lag
    for (topic, partition), offset in consumer.committed.items():
        labels = (("partition", str(partition)), ("topic", topic))
        expected[("kafka_pipeline_committed_offset", labels)] = offset
    last_commit = ("kafka_pipeline_last_commit_timestamp_seconds", ())
    if consumer.last_commit_at is None:
        assert last_commit not in samples
    else:
        expected[last_commit] = consumer.last_commit_at
    for name, child in observation.actors.items():
        expected[("kafka_pipeline_actor_restarts_total", (("actor", name),))] = child.restarts
        expected[("kafka_pipeline_actor_running", (("actor", name),))] = child.running
    for name, state in observation.breakers.items():
        expected[("kafka_pipeline_breaker_state", (("breaker", name),))] = BREAKER_STATE_VALUES[
            state
        ]
    for scope, token in observation.tokens.items():
        key = ("kafka_pipeline_token_seconds_to_expiry", (("scope", scope),))
        if token.seconds_to_expiry is None:
            assert key not in samples
        else:
            expected[key] = token.seconds_to_expiry
    for key, value in expected.items():
        assert samples[key] == float(value), key
    lag_samples = [key for key in samples if key[0] == "kafka_pipeline_consumer_lag"]
    assert len(lag_samples) == len(consumer.lag)


def test_breaker_states_are_ordered_by_how_bad_they_are() -> None:
    """Closed < half-open < open, so `max()` over breakers is the worst state."""
    values = sorted(BREAKER_STATE_VALUES.items(), key=lambda item: item[1])
    assert [state.value for state, _ in values] == ["closed", "half_open", "open"]
    assert [value for _, value in values] == [0.0, 1.0, 2.0]
