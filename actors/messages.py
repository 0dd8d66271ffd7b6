"""The typed messages actors exchange; frozen, so a message cannot change after it was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

import anyio

__all__ = [
    "BreakerStateChanged",
    "PausePartitions",
    "Record",
    "RefreshRequest",
    "ResumePartitions",
    "TokenRefreshed",
]


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    """Ask the token refresher for a fresh token for `scope` now (e.g. after an AUTH failure).

    `done` is set once the refresh attempt finished, successfully or not, so the asker
    can wait for it; concurrent requests for one scope share a single refresh.
    """

    scope: str
    reason: str
    done: anyio.Event = field(default_factory=anyio.Event, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class TokenRefreshed:
    """A token for `scope` was stored in the cache; it expires at `expires_on` (UTC)."""

    scope: str
    expires_on: datetime


@dataclass(frozen=True, slots=True)
class BreakerStateChanged:
    """Circuit breaker `breaker` moved from `old_state` to `new_state` at monotonic time `at`.

    The states are `core.resilience.CircuitState` members; typed as Enum here so this
    module stays free of the breaker's implementation.
    """

    breaker: str
    old_state: Enum
    new_state: Enum
    at: float


@dataclass(frozen=True, slots=True)
class PausePartitions:
    """Stop fetching from every assigned partition until resumed (the handler's breaker is open)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ResumePartitions:
    """Fetch again from the partitions paused for `reason`'s breaker."""

    reason: str


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record as the handler receives it: the bytes, undecoded.

    The handler decides how to decode; `timestamp` is the record's time in milliseconds
    since the epoch (CreateTime or LogAppendTime, as the topic is configured).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int | None = None

    def header(self, name: str) -> bytes | None:
        """The value of the first header called `name`, or None."""
        return next((value for key, value in self.headers if key == name), None)
