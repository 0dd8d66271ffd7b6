"""The consumer's live counters, readable from outside while it runs.

The wiring owns one `ConsumerStats` and hands it to every incarnation of the actor (like
the streams), so the counters survive restarts; metrics exporters and status lines call
`snapshot()` for a consistent, immutable copy (the style of anyio's `statistics()`).
Times are wall-clock seconds since the epoch, ready to export as Prometheus gauges.
Partitions are `(topic, partition)` pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["ConsumerStats", "ConsumerStatsSnapshot", "Partition"]

Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ConsumerStatsSnapshot:
    """The counters at one instant."""

    starts: int
    consumed: int
    handled: int
    failed: int
    """Handler calls that raised (every attempt counts)."""
    retried: int
    dead_lettered: int
    deduplicated: int
    dedup_undecodable: int
    """Records whose trace id could not be read, so dedup did not apply."""
    unparseable: int
    """Stretches of a partition that could not be read as records and were skipped
    (dead-lettered as raw bytes when dead-lettering is on)."""
    commits: int
    commit_failures: int
    """Commit attempts that failed: the handler's `before_commit` or the broker refused."""
    committed: Mapping[Partition, int]
    lag: Mapping[Partition, int]
    assigned: frozenset[Partition]
    paused: frozenset[Partition]
    pause_reasons: frozenset[str]
    last_fetch_at: float | None
    last_commit_at: float | None
    handler_seconds_sum: float
    handler_seconds_count: int
    in_flight: int
    """Records handed to the handler and not back yet."""
    queued: int
    """Records fetched and waiting in their lanes."""
    tier_sent: Mapping[str, int]
    """Records sent to each retry tier topic."""
    tier_retried: Mapping[str, int]
    """Records taken from each retry tier topic to be handled again."""
    due_lag_seconds_sum: float
    due_lag_seconds_count: int
    """How late tier records were handed over past their due time (a summary)."""
    tier_paused: frozenset[Partition]
    """Retry tier partitions paused until their head record is due."""


class ConsumerStats:
    """Mutable counters the actor updates; `snapshot()` is what others read."""

    def __init__(self) -> None:
        self.starts = 0
        self.consumed = 0
        self.handled = 0
        self.failed = 0
        self.retried = 0
        self.dead_lettered = 0
        self.deduplicated = 0
        self.dedup_undecodable = 0
        self.unparseable = 0
        self.commits = 0
        self.commit_failures = 0
        self.committed: dict[Partition, int] = {}
        self.lag: dict[Partition, int] = {}
        self.assigned: frozenset[Partition] = frozenset()
        self.paused: frozenset[Partition] = frozenset()
        self.pause_reasons: frozenset[str] = frozenset()
        self.last_fetch_at: float | None = None
        self.last_commit_at: float | None = None
        self.handler_seconds_sum = 0.0
        self.handler_seconds_count = 0
        self.in_flight = 0
        self.queued = 0
        self.tier_sent: dict[str, int] = {}
        self.tier_retried: dict[str, int] = {}
        self.due_lag_seconds_sum = 0.0
        self.due_lag_seconds_count = 0
        self.tier_paused: frozenset[Partition] = frozenset()

    def observe_handler(self, calls: int, seconds: float) -> None:
        """Add `calls` handler calls that took `seconds` together (added up a run at a time)."""
        self.handler_seconds_sum += seconds
        self.handler_seconds_count += calls

    def snapshot(self) -> ConsumerStatsSnapshot:
        """An immutable copy of every counter."""
        return ConsumerStatsSnapshot(
            starts=self.starts,
            consumed=self.consumed,
            handled=self.handled,
            failed=self.failed,
            retried=self.retried,
            dead_lettered=self.dead_lettered,
            deduplicated=self.deduplicated,
            dedup_undecodable=self.dedup_undecodable,
            unparseable=self.unparseable,
            commits=self.commits,
            commit_failures=self.commit_failures,
            committed=MappingProxyType(dict(self.committed)),
            lag=MappingProxyType(dict(self.lag)),
            assigned=self.assigned,
            paused=self.paused,
            pause_reasons=self.pause_reasons,
            last_fetch_at=self.last_fetch_at,
            last_commit_at=self.last_commit_at,
            handler_seconds_sum=self.handler_seconds_sum,
            handler_seconds_count=self.handler_seconds_count,
            in_flight=self.in_flight,
            queued=self.queued,
            tier_sent=MappingProxyType(dict(self.tier_sent)),
            tier_retried=MappingProxyType(dict(self.tier_retried)),
            due_lag_seconds_sum=self.due_lag_seconds_sum,
            due_lag_seconds_count=self.due_lag_seconds_count,
            tier_paused=self.tier_paused,
        )
