"""A thread-safe, per-scope cache of bearer tokens that stops serving them early.

`refresh_margin` is the cache's serving margin, not the time of a refresh: a token
is no longer served once it is within `refresh_margin` of its expiry (default 10
minutes, so a 60-minute Azure AD token is served for 50 minutes), and the next
request fetches a new one. The margin leaves time for a refresh to fail and be
retried, and for the token to travel to a broker and be checked there, before it
really expires. When refreshes happen is the token refresher's business: it refreshes
ahead of this margin (its lead time is the margin plus a little more), so a request
finds a fresh token in the cache.

Everything is UTC: expiries are stored as aware UTC datetimes, naive datetimes
are rejected (their zone would be a guess), and epoch seconds are UTC by
definition. The clock is injectable so tests can move time without sleeping.
Readers and writers may be on different threads (azure-identity calls run in
worker threads), so every access holds one `threading.Lock`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["DEFAULT_REFRESH_MARGIN", "CachedToken", "Clock", "TokenCache", "utc_now"]

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime."""

DEFAULT_REFRESH_MARGIN = timedelta(minutes=10)


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (the default clock)."""
    return datetime.now(UTC)


def to_utc_datetime(expires_on: datetime | float) -> datetime:
    """`expires_on` (aware datetime or epoch seconds) as an aware UTC datetime.

    Raises ValueError for a naive datetime, a bool, or a non-finite number.
    """
    if isinstance(expires_on, datetime):
        if expires_on.tzinfo is None or expires_on.utcoffset() is None:
            raise ValueError(
                "expires_on is a naive datetime; pass an aware datetime "
                "(e.g. datetime.now(timezone.utc)) or epoch seconds"
            )
        return expires_on.astimezone(UTC)
    if isinstance(expires_on, bool) or not isinstance(expires_on, int | float):
        raise ValueError(
            f"expires_on must be an aware datetime or epoch seconds, got {expires_on!r}"
        )
    if not math.isfinite(expires_on):
        raise ValueError(f"expires_on must be a finite number of epoch seconds, got {expires_on!r}")
    try:
        return datetime.fromtimestamp(expires_on, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"expires_on is out of range for a datetime: {expires_on!r}") from exc


@dataclass(frozen=True)
class CachedToken:
    """A bearer token and the moment it stops being valid; its repr hides the token."""

    token: str = field(repr=False)
    expires_on: datetime

    def seconds_to_expiry(self, now: datetime) -> float:
        """Seconds from `now` until expiry (negative once expired)."""
        return (self.expires_on - now).total_seconds()

    def is_fresh(self, now: datetime, margin: timedelta) -> bool:
        """True while `now` is more than `margin` before expiry."""
        return now < self.expires_on - margin


class TokenCache:
    """Tokens by scope; `get` serves one only while it is fresh (see the module docstring)."""

    def __init__(
        self,
        refresh_margin: timedelta = DEFAULT_REFRESH_MARGIN,
        clock: Clock = utc_now,
    ) -> None:
        if refresh_margin < timedelta(0):
            raise ValueError(f"refresh_margin must not be negative, got {refresh_margin!r}")
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, CachedToken] = {}

    @property
    def refresh_margin(self) -> timedelta:
        """How long before expiry a token stops being served."""
        return self._refresh_margin

    def now(self) -> datetime:
        """The cache's clock reading, in UTC."""
        return self._clock().astimezone(UTC)

    def set(self, scope: str, token: str, expires_on: datetime | float) -> CachedToken:
        """Store `token` for `scope` until `expires_on` (aware datetime or epoch seconds)."""
        if not token:
            raise ValueError(f"refusing to cache an empty token for scope {scope!r}")
        entry = CachedToken(token=token, expires_on=to_utc_datetime(expires_on))
        with self._lock:
            self._entries[scope] = entry
        return entry

    def get(self, scope: str) -> str | None:
        """The token for `scope`, or None when absent or within the margin of expiry."""
        entry = self.fresh_entry(scope)
        return entry.token if entry is not None else None

    def fresh_entry(self, scope: str) -> CachedToken | None:
        """The entry for `scope` if it may still be served, else None."""
        now = self.now()
        with self._lock:
            entry = self._entries.get(scope)
        if entry is None or not entry.is_fresh(now, self._refresh_margin):
            return None
        return entry

    def get_entry(self, scope: str) -> CachedToken | None:
        """The stored entry for `scope`, fresh or not (for expiry bookkeeping)."""
        with self._lock:
            return self._entries.get(scope)

    def clear(self, scope: str | None = None) -> None:
        """Forget the token of `scope`, or every token when `scope` is None."""
        with self._lock:
            if scope is None:
                self._entries.clear()
            else:
                self._entries.pop(scope, None)

    def scopes(self) -> list[str]:
        """The scopes that have an entry, fresh or not, sorted."""
        with self._lock:
            return sorted(self._entries)

    def entries(self) -> dict[str, CachedToken]:
        """A snapshot of every entry by scope, fresh or not."""
        with self._lock:
            return dict(self._entries)

    def __repr__(self) -> str:
        return f"TokenCache(scopes={self.scopes()!r}, refresh_margin={self._refresh_margin!r})"
