"""When the token refresher refreshes a token it has just fetched.

Normally `lead_time` before expiry. The lead is longer than the cache's margin (the
time before expiry when the cache stops serving a token), so the new token is in
the cache before the old one stops being served and the consumer never waits.
A token that lives shorter than the lead (not Azure AD's usual hour, but it
happens: a managed identity endpoint may hand out a token it cached long ago) is
refreshed halfway through the time the cache will serve it. `min_interval` keeps
a token that the cache would never serve from turning the refresher into a loop
that hammers the token endpoint.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.auth.token_cache import CachedToken

__all__ = ["next_refresh_at"]


def next_refresh_at(
    token: CachedToken,
    fetched_at: datetime,
    *,
    lead_time: timedelta,
    serve_margin: timedelta,
    min_interval: timedelta,
) -> datetime:
    """When to refresh `token`, fetched at `fetched_at` (see the module docstring)."""
    refresh_at = token.expires_on - lead_time
    if refresh_at <= fetched_at:
        served_until = token.expires_on - serve_margin
        refresh_at = fetched_at + (served_until - fetched_at) / 2
    return max(refresh_at, fetched_at + min_interval)
