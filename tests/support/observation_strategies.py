"""Hypothesis strategies for `supervisor.pipeline.observation.Observation`, from real types."""

from __future__ import annotations

from types import MappingProxyType

from hypothesis import strategies as st

from actors.consumer import ConsumerStatsSnapshot
from actors.log_shipper import LogShipperStatistics
from actors.token_refresher import ScopeRefreshStats
from core.resilience import CircuitState
from supervisor import ChildStats
from supervisor.pipeline.observation import Observation

counts = st.integers(0, 10**9)
partitions = st.tuples(st.sampled_from(["events", "orders"]), st.integers(0, 7))
tier_topics = st.sampled_from(["orders.retry.30s", "orders.retry.5m"])
tier_partitions = st.tuples(tier_topics, st.integers(0, 7))
actor_names = st.sampled_from(
    ["log_shipper", "health_server", "token_refresher", "breaker_monitor", "kafka_consumer"]
)

consumer_snapshots = st.builds(
    ConsumerStatsSnapshot,
    starts=counts,
    consumed=counts,
    handled=counts,
    failed=counts,
    retried=counts,
    dead_lettered=counts,
    deduplicated=counts,
    dedup_undecodable=counts,
    unparseable=counts,
    commits=counts,
    commit_failures=counts,
    committed=st.dictionaries(partitions, counts, max_size=4).map(MappingProxyType),
    lag=st.dictionaries(partitions, counts, max_size=4).map(MappingProxyType),
    assigned=st.frozensets(partitions, max_size=4),
    paused=st.frozensets(partitions, max_size=4),
    pause_reasons=st.frozensets(st.sampled_from(["handler", "operator"])),
    last_fetch_at=st.none() | st.floats(0, 2e9),
    last_commit_at=st.none() | st.floats(0, 2e9),
    handler_seconds_sum=st.floats(0, 1e6),
    handler_seconds_count=counts,
    in_flight=counts,
    queued=counts,
    tier_sent=st.dictionaries(tier_topics, counts, max_size=3).map(MappingProxyType),
    tier_retried=st.dictionaries(tier_topics, counts, max_size=3).map(MappingProxyType),
    due_lag_seconds_sum=st.floats(0, 1e6),
    due_lag_seconds_count=counts,
    tier_paused=st.frozensets(tier_partitions, max_size=4),
)


def _child(name: str) -> st.SearchStrategy[ChildStats]:
    return st.builds(
        ChildStats,
        name=st.just(name),
        running=st.booleans(),
        starts=counts,
        restarts=counts,
        exits=st.dictionaries(
            st.sampled_from(["returned", "stopped", "transient", "unknown", "auth"]),
            st.integers(1, 100),
            max_size=3,
        ).map(MappingProxyType),
        last_exit=st.none() | st.sampled_from(["stopped", "transient"]),
        last_exit_at=st.none() | st.floats(0, 1e6),
    )


actor_tables = st.lists(actor_names, unique=True, max_size=5).flatmap(
    lambda names: st.fixed_dictionaries({name: _child(name) for name in names})
)

token_stats = st.builds(
    ScopeRefreshStats,
    scope=st.just("scope"),
    fresh=st.booleans(),
    seconds_to_expiry=st.none() | st.floats(-3600, 3600),
    refresh_count=counts,
    failure_count=counts,
    consecutive_failures=counts,
    last_error_category=st.none(),
    last_refreshed_at=st.none(),
    next_refresh_at=st.none(),
)

log_statistics = st.builds(
    LogShipperStatistics,
    emitted=counts,
    dropped=counts,
    shipped=counts,
    abandoned=counts,
    sink_errors=counts,
    batches=counts,
    queued=counts,
    capacity=st.integers(1, 10**6),
)

observations = st.builds(
    Observation,
    consumer=consumer_snapshots,
    actors=actor_tables.map(MappingProxyType),
    breakers=st.dictionaries(
        st.sampled_from(["handler", "sink"]), st.sampled_from(CircuitState), max_size=2
    ).map(MappingProxyType),
    tokens=st.dictionaries(
        st.sampled_from(["https://a.servicebus.windows.net/.default", "api://x/.default"]),
        token_stats,
        max_size=2,
    ).map(MappingProxyType),
    log=log_statistics,
    root_running=st.booleans(),
)
