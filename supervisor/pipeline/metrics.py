"""Every metric the process exposes, declared in one table, read from the actors at scrape time.

Like arroyo's `metric_names`, the names live in one place (`METRICS`): name, type, help,
labels and how the value is read from an `Observation`. Nothing on the hot path calls a
metrics library: the consumer, the supervisor, the breaker monitor, the token refresher
and the log buffer keep plain counters, and `PipelineCollector` (a prometheus-client
custom collector on a private `CollectorRegistry`) turns one snapshot of them into the
Prometheus text format when `/metrics` is scraped.

Handler latency is a summary (`_count` and `_sum`): the consumer keeps a sum and a count,
not buckets. Breaker states are 0 closed, 1 half-open, 2 open.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

from core.resilience import CircuitState
from supervisor.pipeline.observation import Observation

__all__ = [
    "BREAKER_STATE_VALUES",
    "CONTENT_TYPE",
    "METRICS",
    "Kind",
    "MetricSpec",
    "MetricsExporter",
    "PipelineCollector",
    "Summary",
]


class Kind(enum.Enum):
    """The Prometheus metric types this process uses."""

    COUNTER = "counter"
    GAUGE = "gauge"
    SUMMARY = "summary"


class Summary(NamedTuple):
    """The value of a summary without quantiles."""

    count_value: float
    sum_value: float


Samples = Iterable[tuple[tuple[str, ...], float | Summary]]
"""(label values, value) pairs of one metric."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exposed metric: its exposition name, type, help, label names and reader."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...]
    read: Callable[[Observation], Samples]


CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which every Prometheus parses (all names here are legacy-valid,
so prometheus-client's output is exactly that format, whatever its newest default)."""

BREAKER_STATE_VALUES: Final = {
    CircuitState.CLOSED: 0.0,
    CircuitState.HALF_OPEN: 1.0,
    CircuitState.OPEN: 2.0,
}


def _single(value: float) -> Samples:
    return [((), float(value))]


def _lag(observation: Observation) -> Samples:
    lags = sorted(observation.consumer.lag.items())
    return [((topic, str(partition)), float(lag)) for (topic, partition), lag in lags]


def _committed(observation: Observation) -> Samples:
    offsets = sorted(observation.consumer.committed.items())
    return [((topic, str(partition)), float(offset)) for (topic, partition), offset in offsets]


def _last_commit(observation: Observation) -> Samples:
    at = observation.consumer.last_commit_at
    return [] if at is None else _single(at)


def _exits(observation: Observation) -> Samples:
    return [
        ((name, reason), float(count))
        for name, child in observation.actors.items()
        for reason, count in sorted(child.exits.items())
    ]


def _token_expiry(observation: Observation) -> Samples:
    return [
        ((scope,), stats.seconds_to_expiry)
        for scope, stats in observation.tokens.items()
        if stats.seconds_to_expiry is not None
    ]


METRICS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(
        "kafka_pipeline_records_consumed_total",
        Kind.COUNTER,
        "Records fetched from Kafka (a redelivered record counts again).",
        (),
        lambda o: _single(o.consumer.consumed),
    ),
    MetricSpec(
        "kafka_pipeline_records_handled_total",
        Kind.COUNTER,
        "Records the handler finished without an error.",
        (),
        lambda o: _single(o.consumer.handled),
    ),
    MetricSpec(
        "kafka_pipeline_records_failed_total",
        Kind.COUNTER,
        "Handler calls that raised (every attempt counts).",
        (),
        lambda o: _single(o.consumer.failed),
    ),
    MetricSpec(
        "kafka_pipeline_records_retried_total",
        Kind.COUNTER,
        "Handler calls that were in-place retries.",
        (),
        lambda o: _single(o.consumer.retried),
    ),
    MetricSpec(
        "kafka_pipeline_records_unparseable_total",
        Kind.COUNTER,
        "Stretches of a partition that could not be read as records: skipped with an error "
        "log, their raw bytes dead-lettered.",
        (),
        lambda o: _single(o.consumer.unparseable),
    ),
    MetricSpec(
        "kafka_pipeline_records_dead_lettered_total",
        Kind.COUNTER,
        "Records that failed permanently and were acknowledged by the dead-letter topic.",
        (),
        lambda o: _single(o.consumer.dead_lettered),
    ),
    MetricSpec(
        "kafka_pipeline_retry_tier_sent_total",
        Kind.COUNTER,
        "Records produced to a retry tier topic (acknowledged), per tier topic.",
        ("topic",),
        lambda o: [((topic,), float(n)) for topic, n in sorted(o.consumer.tier_sent.items())],
    ),
    MetricSpec(
        "kafka_pipeline_retry_tier_retried_total",
        Kind.COUNTER,
        "Records taken from a retry tier topic, once due, to be handled again, per tier topic.",
        ("topic",),
        lambda o: [((topic,), float(n)) for topic, n in sorted(o.consumer.tier_retried.items())],
    ),
    MetricSpec(
        "kafka_pipeline_retry_tier_due_lag_seconds",
        Kind.SUMMARY,
        "How late retry tier records were handed over past their due time, in seconds.",
        (),
        lambda o: [((), Summary(o.consumer.due_lag_seconds_count, o.consumer.due_lag_seconds_sum))],
    ),
    MetricSpec(
        "kafka_pipeline_retry_tier_partitions_paused",
        Kind.GAUGE,
        "Partitions paused on their own: retry tier partitions until their head record is "
        "due, and source partitions while the keys kept in order are at their bound.",
        (),
        lambda o: _single(len(o.consumer.tier_paused)),
    ),
    MetricSpec(
        "kafka_pipeline_records_deduplicated_total",
        Kind.COUNTER,
        "Records skipped because their trace id was handled recently.",
        (),
        lambda o: _single(o.consumer.deduplicated),
    ),
    MetricSpec(
        "kafka_pipeline_commits_total",
        Kind.COUNTER,
        "Offset commits the consumer made.",
        (),
        lambda o: _single(o.consumer.commits),
    ),
    MetricSpec(
        "kafka_pipeline_commit_failures_total",
        Kind.COUNTER,
        "Offset commits that failed or timed out (the handler's before_commit, the broker).",
        (),
        lambda o: _single(o.consumer.commit_failures),
    ),
    MetricSpec(
        "kafka_pipeline_last_commit_timestamp_seconds",
        Kind.GAUGE,
        "When the consumer last committed an offset that moved (epoch seconds; absent before).",
        (),
        lambda o: _last_commit(o),
    ),
    MetricSpec(
        "kafka_pipeline_committed_offset",
        Kind.GAUGE,
        "The offset last committed per owned partition (the next record to read).",
        ("topic", "partition"),
        lambda o: _committed(o),
    ),
    MetricSpec(
        "kafka_pipeline_handler_seconds",
        Kind.SUMMARY,
        "Duration of handler calls, in seconds.",
        (),
        lambda o: [((), Summary(o.consumer.handler_seconds_count, o.consumer.handler_seconds_sum))],
    ),
    MetricSpec(
        "kafka_pipeline_records_in_flight",
        Kind.GAUGE,
        "Records handed to the handler's workers and not finished yet.",
        (),
        lambda o: _single(o.consumer.in_flight),
    ),
    MetricSpec(
        "kafka_pipeline_records_queued",
        Kind.GAUGE,
        "Records fetched and waiting in their lanes (bounded by max_buffered with the above).",
        (),
        lambda o: _single(o.consumer.queued),
    ),
    MetricSpec(
        "kafka_pipeline_consumer_lag",
        Kind.GAUGE,
        "Records between the consumer's position and the partition's high watermark.",
        ("topic", "partition"),
        _lag,
    ),
    MetricSpec(
        "kafka_pipeline_partitions_assigned",
        Kind.GAUGE,
        "Partitions assigned to this group member.",
        (),
        lambda o: _single(len(o.consumer.assigned)),
    ),
    MetricSpec(
        "kafka_pipeline_partitions_paused",
        Kind.GAUGE,
        "Assigned partitions whose fetching is paused.",
        (),
        lambda o: _single(len(o.consumer.paused)),
    ),
    MetricSpec(
        "kafka_pipeline_actor_restarts_total",
        Kind.COUNTER,
        "Restarts the root supervisor scheduled, per actor.",
        ("actor",),
        lambda o: [((name,), float(child.restarts)) for name, child in o.actors.items()],
    ),
    MetricSpec(
        "kafka_pipeline_actor_exits_total",
        Kind.COUNTER,
        "Actor exits by reason: returned, stopped, or the error category.",
        ("actor", "reason"),
        _exits,
    ),
    MetricSpec(
        "kafka_pipeline_actor_running",
        Kind.GAUGE,
        "1 while the actor has reported started and not exited.",
        ("actor",),
        lambda o: [((name,), float(child.running)) for name, child in o.actors.items()],
    ),
    MetricSpec(
        "kafka_pipeline_breaker_state",
        Kind.GAUGE,
        "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        ("breaker",),
        lambda o: [((name,), BREAKER_STATE_VALUES[state]) for name, state in o.breakers.items()],
    ),
    MetricSpec(
        "kafka_pipeline_token_seconds_to_expiry",
        Kind.GAUGE,
        "Seconds until the cached token of a scope expires (negative once expired).",
        ("scope",),
        _token_expiry,
    ),
    MetricSpec(
        "kafka_pipeline_log_records_dropped_total",
        Kind.COUNTER,
        "Log records dropped because the log buffer was full.",
        (),
        lambda o: _single(o.log.dropped),
    ),
)


def _family(spec: MetricSpec, samples: Samples) -> Any:
    if spec.kind is Kind.COUNTER:
        family: Any = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    elif spec.kind is Kind.GAUGE:
        family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    else:
        family = SummaryMetricFamily(spec.name, spec.help, labels=spec.labels)
    for labels, value in samples:
        if isinstance(value, Summary):
            family.add_metric(
                list(labels), count_value=value.count_value, sum_value=value.sum_value
            )
        else:
            family.add_metric(list(labels), value)
    return family


class PipelineCollector:
    """A prometheus-client collector: one `observe()` per scrape, every metric of `METRICS`."""

    def __init__(self, observe: Callable[[], Observation]) -> None:
        self._observe = observe

    def collect(self) -> Iterator[Any]:
        """The families of every metric, read from one fresh observation."""
        observation = self._observe()
        for spec in METRICS:
            yield _family(spec, spec.read(observation))

    def describe(self) -> Iterator[Any]:
        """The families without samples (lets the registry check names without observing)."""
        for spec in METRICS:
            yield _family(spec, ())


class MetricsExporter:
    """Renders the pipeline's metrics in the Prometheus text format, from a private registry."""

    def __init__(self, observe: Callable[[], Observation]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PipelineCollector(observe))

    def render(self) -> tuple[bytes, str]:
        """The exposition and its content type (the shape `HealthServer` wants)."""
        return generate_latest(self.registry), CONTENT_TYPE
