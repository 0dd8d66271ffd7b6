"""next_refresh_at: when the token refresher replaces a token it has just fetched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from actors.token_refresher.schedule import next_refresh_at
from core.auth.token_cache import CachedToken

FETCHED_AT = datetime(2030, 1, 1, tzinfo=UTC)
MIN_INTERVAL = timedelta(seconds=10)


def seconds(low: float, high: float) -> st.SearchStrategy[timedelta]:
    """Durations between `low` and `high` seconds."""
    return st.floats(low, high).map(lambda value: timedelta(seconds=value))


@given(margin=seconds(0, 3600), extra_lead=seconds(0, 3600), lifetime=seconds(0, 90_000))
def test_a_servable_token_is_replaced_before_the_cache_stops_serving_it(
    margin: timedelta, extra_lead: timedelta, lifetime: timedelta
) -> None:
    """Whatever the lifetime, margin and lead: a token the cache serves for longer than twice
    min_interval is refreshed while still served (at the last moment when the lead equals the
    margin), and never sooner than min_interval after it was fetched."""
    token = CachedToken("t", FETCHED_AT + lifetime)
    served_until = token.expires_on - margin
    refresh_at = next_refresh_at(
        token,
        FETCHED_AT,
        lead_time=margin + extra_lead,
        serve_margin=margin,
        min_interval=MIN_INTERVAL,
    )

    assert refresh_at >= FETCHED_AT + MIN_INTERVAL
    if served_until - FETCHED_AT > 2 * MIN_INTERVAL:
        assert refresh_at <= served_until
        if extra_lead > timedelta(0):
            assert refresh_at < served_until


@given(lead=seconds(0, 3600), spare=seconds(MIN_INTERVAL.total_seconds() + 1e-3, 90_000))
def test_a_token_that_outlives_the_lead_is_refreshed_exactly_lead_before_expiry(
    lead: timedelta, spare: timedelta
) -> None:
    """With more than min_interval between fetching and expiry - lead, refresh at expiry - lead."""
    token = CachedToken("t", FETCHED_AT + lead + spare)
    refresh_at = next_refresh_at(
        token, FETCHED_AT, lead_time=lead, serve_margin=lead, min_interval=MIN_INTERVAL
    )

    assert refresh_at == token.expires_on - lead
