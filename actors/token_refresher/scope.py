"""What the token refresher knows about one scope: its schedule, waiting requests and counters.

Requests that arrive while a refresh of the scope is in flight join that refresh;
the others wait for the next one. Either way each request's `done` is set when the
refresh it joined finished, so N concurrent askers cost one token request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import anyio

from actors.messages import RefreshRequest
from core.types import ErrorCategory

__all__ = ["ScopeRefreshStats", "ScopeState"]


@dataclass(frozen=True, slots=True)
class ScopeRefreshStats:
    """A snapshot of one scope, for /metrics and /readyz."""

    scope: str
    fresh: bool
    """The cache serves a token for the scope right now."""
    seconds_to_expiry: float | None
    """Until the cached token expires (negative once expired); None without a token."""
    refresh_count: int
    failure_count: int
    consecutive_failures: int
    last_error_category: ErrorCategory | None
    last_refreshed_at: datetime | None
    next_refresh_at: datetime | None


class ScopeState:
    """Schedule, requests and counters of one scope; lives as long as the actor object.

    The counters survive restarts of the actor (they are lifetime metrics); the
    schedule and the events are set up anew by `start_run` for each run.
    """

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.refresh_count = 0
        self.failure_count = 0
        self.consecutive_failures = 0
        self.last_error_category: ErrorCategory | None = None
        self.last_refreshed_at: datetime | None = None
        self.due_at: datetime | None = None
        self.wake = anyio.Event()
        self.has_token = anyio.Event()
        self._pending: list[RefreshRequest] = []
        self._in_flight: list[RefreshRequest] | None = None

    def start_run(self, due_at: datetime, *, has_token: bool) -> None:
        """Begin a run of the actor: refresh at `due_at`, forget the last run's failure streak."""
        self.due_at = due_at
        self.consecutive_failures = 0
        self.wake = anyio.Event()
        self.has_token = anyio.Event()
        if has_token:
            self.has_token.set()

    @property
    def backing_off(self) -> bool:
        """The last attempt failed, so requests wait for the next scheduled attempt."""
        return self.consecutive_failures > 0

    @property
    def requested(self) -> bool:
        """Someone asked for a refresh that has not started yet."""
        return bool(self._pending)

    def add_request(self, request: RefreshRequest) -> None:
        """Join the refresh in flight, or wait for the next one and wake the scheduler."""
        if self._in_flight is not None:
            self._in_flight.append(request)
        else:
            self._pending.append(request)
        self.wake.set()

    def begin_attempt(self) -> None:
        """A refresh starts: the waiting requests (and any arriving meanwhile) belong to it."""
        self._in_flight, self._pending = self._pending, []

    def finish_attempt(self) -> None:
        """The refresh finished, successfully or not: release everyone who joined it."""
        finished, self._in_flight = self._in_flight or [], None
        for request in finished:
            request.done.set()

    def release_waiting(self) -> None:
        """The actor stops: release every request still waiting, so no asker hangs."""
        self.finish_attempt()
        waiting, self._pending = self._pending, []
        for request in waiting:
            request.done.set()

    def record_success(self, now: datetime, next_refresh_at: datetime) -> None:
        """A token was stored at `now`; refresh it again at `next_refresh_at`."""
        self.refresh_count += 1
        self.consecutive_failures = 0
        self.last_refreshed_at = now
        self.due_at = next_refresh_at
        self.has_token.set()

    def record_failure(self, category: ErrorCategory) -> None:
        """An attempt failed with an error of `category`."""
        self.failure_count += 1
        self.consecutive_failures += 1
        self.last_error_category = category
