"""One snapshot of the running process, read when a probe or a scrape asks for it.

The actors keep their own counters (consumer stats, supervisor stats, breaker health,
token stats, log buffer statistics); nothing is pushed on the hot path. `/metrics`,
`/readyz` and the demo's status line all read the same `Observation`, so they never
disagree about what the process is doing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors.consumer import ConsumerStatsSnapshot
from actors.log_shipper import LogShipperStatistics
from actors.token_refresher import ScopeRefreshStats
from core.resilience import CircuitState
from supervisor import ChildStats

__all__ = ["Observation"]


@dataclass(frozen=True, slots=True)
class Observation:
    """The state of the pipeline at one instant."""

    consumer: ConsumerStatsSnapshot
    actors: Mapping[str, ChildStats]
    """The root supervisor's children, in start order."""
    breakers: Mapping[str, CircuitState]
    tokens: Mapping[str, ScopeRefreshStats]
    """Per token scope; empty when auth.method is none."""
    log: LogShipperStatistics
    root_running: bool
    """The root supervisor's run is in progress (from start until it returned or raised)."""
