"""TokenCache and CachedToken: freshness margin, UTC handling, validation, thread safety."""

from __future__ import annotations

import dataclasses
import math
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from clocks import ManualUtcClock
from hypothesis import given, settings
from hypothesis import strategies as st

from core.auth.token_cache import DEFAULT_REFRESH_MARGIN, CachedToken, TokenCache, utc_now

SCOPE = "https://storage.azure.com/.default"


def test_default_margin_serves_a_60_minute_token_for_50_minutes(clock: ManualUtcClock) -> None:
    """With the default margin a 60-minute token is served before minute 50 and not from it."""
    cache = TokenCache(clock=clock)
    cache.set(SCOPE, "tok", clock.now + timedelta(minutes=60))
    clock.advance(50 * 60 - 0.001)
    assert cache.get(SCOPE) == "tok"
    clock.advance(0.001)
    assert cache.get(SCOPE) is None
    assert timedelta(minutes=10) == DEFAULT_REFRESH_MARGIN


def test_unknown_scope_has_no_token(clock: ManualUtcClock) -> None:
    """A scope never set yields None from get, get_entry and fresh_entry."""
    cache = TokenCache(clock=clock)
    assert cache.get(SCOPE) is None
    assert cache.get_entry(SCOPE) is None
    assert cache.fresh_entry(SCOPE) is None


def test_margin_boundary_is_exclusive(clock: ManualUtcClock) -> None:
    """At exactly expiry minus margin the token is no longer served."""
    cache = TokenCache(refresh_margin=timedelta(seconds=30), clock=clock)
    cache.set(SCOPE, "tok", clock.now + timedelta(seconds=100))
    clock.advance(70)
    assert cache.get(SCOPE) is None


def test_zero_margin_serves_until_expiry(clock: ManualUtcClock) -> None:
    """A zero margin serves the token up to, but not at, its expiry."""
    cache = TokenCache(refresh_margin=timedelta(0), clock=clock)
    cache.set(SCOPE, "tok", clock.now + timedelta(seconds=5))
    clock.advance(4.999)
    assert cache.get(SCOPE) == "tok"
    clock.advance(0.001)
    assert cache.get(SCOPE) is None


def test_negative_margin_is_rejected() -> None:
    """A negative margin would serve expired tokens, so the constructor refuses it."""
    with pytest.raises(ValueError, match="must not be negative"):
        TokenCache(refresh_margin=timedelta(seconds=-1))


def test_epoch_seconds_and_datetime_give_the_same_expiry(clock: ManualUtcClock) -> None:
    """Epoch seconds (int or float) are read as UTC instants equal to the datetime form."""
    cache = TokenCache(clock=clock)
    moment = clock.now + timedelta(hours=1)
    from_int = cache.set("a", "tok", int(moment.timestamp()))
    from_float = cache.set("b", "tok", moment.timestamp())
    from_datetime = cache.set("c", "tok", moment)
    assert from_int.expires_on == from_float.expires_on == from_datetime.expires_on == moment
    assert from_int.expires_on.tzinfo is UTC


def test_aware_non_utc_datetime_is_stored_in_utc(clock: ManualUtcClock) -> None:
    """An expiry in another zone is converted to the same instant in UTC."""
    cache = TokenCache(clock=clock)
    tokyo = timezone(timedelta(hours=9))
    entry = cache.set(SCOPE, "tok", datetime(2030, 1, 2, 9, 0, tzinfo=tokyo))
    assert entry.expires_on == datetime(2030, 1, 2, 0, 0, tzinfo=UTC)
    assert entry.expires_on.utcoffset() == timedelta(0)


def test_naive_datetime_is_rejected_with_a_clear_message(clock: ManualUtcClock) -> None:
    """A naive datetime's zone would be a guess, so set refuses it and says what to pass."""
    cache = TokenCache(clock=clock)
    with pytest.raises(ValueError, match=r"naive datetime.*aware datetime"):
        cache.set(SCOPE, "tok", datetime(2030, 1, 1, 13, 0))
    assert cache.get_entry(SCOPE) is None


@pytest.mark.parametrize("bad", [True, math.nan, math.inf, -math.inf, "1700000000", None])
def test_non_numeric_or_non_finite_expiry_is_rejected(clock: ManualUtcClock, bad: object) -> None:
    """Booleans, NaN, infinities, strings and None are not expiries."""
    cache = TokenCache(clock=clock)
    with pytest.raises(ValueError, match="expires_on"):
        cache.set(SCOPE, "tok", bad)  # type: ignore[arg-type]


def test_out_of_range_epoch_is_a_value_error(clock: ManualUtcClock) -> None:
    """An epoch beyond what datetime can hold is a ValueError, not an OverflowError."""
    cache = TokenCache(clock=clock)
    with pytest.raises(ValueError, match="out of range"):
        cache.set(SCOPE, "tok", 1e20)


def test_empty_token_is_rejected(clock: ManualUtcClock) -> None:
    """Caching an empty token would hand brokers an empty credential; set refuses."""
    cache = TokenCache(clock=clock)
    with pytest.raises(ValueError, match="empty token"):
        cache.set(SCOPE, "", clock.now + timedelta(hours=1))


def test_get_entry_returns_stale_entries_for_bookkeeping(clock: ManualUtcClock) -> None:
    """get_entry still returns an entry inside the margin, while get and fresh_entry do not."""
    cache = TokenCache(clock=clock)
    stored = cache.set(SCOPE, "tok", clock.now + timedelta(minutes=5))
    assert cache.get_entry(SCOPE) == stored
    assert cache.fresh_entry(SCOPE) is None
    assert cache.get(SCOPE) is None


def test_set_replaces_the_previous_token(clock: ManualUtcClock) -> None:
    """A second set for a scope replaces token and expiry."""
    cache = TokenCache(clock=clock)
    cache.set(SCOPE, "old", clock.now + timedelta(minutes=5))
    cache.set(SCOPE, "new", clock.now + timedelta(hours=1))
    assert cache.get(SCOPE) == "new"


def test_scopes_are_independent(clock: ManualUtcClock) -> None:
    """Each scope has its own expiry: one going stale leaves the other served."""
    cache = TokenCache(clock=clock)
    cache.set("short", "s", clock.now + timedelta(minutes=15))
    cache.set("long", "l", clock.now + timedelta(hours=1))
    clock.advance(6 * 60)
    assert cache.get("short") is None
    assert cache.get("long") == "l"


def test_clear_one_scope_or_all(clock: ManualUtcClock) -> None:
    """clear(scope) forgets that scope only; clear() forgets all; unknown scopes are fine."""
    cache = TokenCache(clock=clock)
    for scope in ("a", "b", "c"):
        cache.set(scope, f"tok-{scope}", clock.now + timedelta(hours=1))
    cache.clear("b")
    cache.clear("never-set")
    assert cache.scopes() == ["a", "c"]
    cache.clear()
    assert cache.scopes() == []


def test_entries_is_a_snapshot_of_all_entries(clock: ManualUtcClock) -> None:
    """entries() returns every entry, fresh or not, as a copy unaffected by later changes."""
    cache = TokenCache(clock=clock)
    fresh = cache.set("fresh", "f", clock.now + timedelta(hours=1))
    stale = cache.set("stale", "s", clock.now + timedelta(minutes=1))
    snapshot = cache.entries()
    cache.clear()
    assert snapshot == {"fresh": fresh, "stale": stale}


def test_scopes_lists_every_entry_sorted_fresh_or_not(clock: ManualUtcClock) -> None:
    """scopes() is sorted and includes entries inside the margin."""
    cache = TokenCache(clock=clock)
    cache.set("z", "tok", clock.now + timedelta(hours=1))
    cache.set("a", "tok", clock.now + timedelta(minutes=1))
    assert cache.scopes() == ["a", "z"]


def test_reprs_never_show_tokens(clock: ManualUtcClock) -> None:
    """Neither CachedToken's nor TokenCache's repr or str contains the token."""
    cache = TokenCache(clock=clock)
    entry = cache.set(SCOPE, "super-secret-token-value", clock.now + timedelta(hours=1))
    for text in (repr(entry), str(entry), repr(cache), str(cache)):
        assert "super-secret-token-value" not in text
    assert SCOPE in repr(cache)
    assert "expires_on" in repr(entry)


def test_cached_token_is_frozen(clock: ManualUtcClock) -> None:
    """A CachedToken cannot be altered after creation."""
    entry = CachedToken(token="tok", expires_on=clock.now)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.token = "other"  # type: ignore[misc]


def test_seconds_to_expiry_counts_down_and_goes_negative(clock: ManualUtcClock) -> None:
    """seconds_to_expiry is positive before expiry and negative after."""
    entry = CachedToken(token="tok", expires_on=clock.now + timedelta(seconds=90))
    assert entry.seconds_to_expiry(clock.now) == 90
    assert entry.seconds_to_expiry(clock.now + timedelta(seconds=100)) == -10


def test_is_fresh_compares_against_expiry_minus_margin(clock: ManualUtcClock) -> None:
    """is_fresh is true strictly before expiry minus the margin."""
    entry = CachedToken(token="tok", expires_on=clock.now + timedelta(seconds=60))
    assert entry.is_fresh(clock.now, timedelta(seconds=59))
    assert not entry.is_fresh(clock.now, timedelta(seconds=60))


def test_clock_in_another_zone_is_read_as_utc() -> None:
    """now() converts an aware non-UTC clock reading to UTC."""
    tokyo = timezone(timedelta(hours=9))
    cache = TokenCache(clock=lambda: datetime(2030, 1, 1, 9, 0, tzinfo=tokyo))
    assert cache.now() == datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    assert cache.now().tzinfo is UTC


def test_default_clock_is_aware_utc() -> None:
    """The default clock returns an aware UTC datetime close to the system time."""
    reading = utc_now()
    assert reading.tzinfo is UTC
    assert abs((reading - datetime.now(UTC)).total_seconds()) < 5


def test_concurrent_writers_and_readers_see_consistent_entries() -> None:
    """Threads setting, reading and clearing at once never see a torn or foreign token."""
    cache = TokenCache(refresh_margin=timedelta(0))
    expiry = datetime.now(UTC) + timedelta(hours=1)
    rounds = 2000
    errors: list[str] = []
    start = threading.Barrier(6)

    def writer(scope: str) -> None:
        start.wait()
        for n in range(rounds):
            cache.set(scope, f"{scope}:{n}", expiry)

    def reader(scope: str) -> None:
        start.wait()
        for _ in range(rounds):
            token = cache.get(scope)
            if token is not None and not token.startswith(f"{scope}:"):
                errors.append(token)

    def clearer() -> None:
        start.wait()
        for _ in range(rounds // 10):
            cache.clear("s2")

    threads = [threading.Thread(target=writer, args=(f"s{i}",)) for i in range(3)]
    threads += [threading.Thread(target=reader, args=(f"s{i}",)) for i in range(2)]
    threads.append(threading.Thread(target=clearer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.get("s0") == f"s0:{rounds - 1}"
    assert cache.get("s1") == f"s1:{rounds - 1}"


@settings(max_examples=200, deadline=None)
@given(
    lifetime=st.floats(min_value=-3600, max_value=7200, allow_nan=False),
    margin=st.floats(min_value=0, max_value=3600, allow_nan=False),
    query_after=st.floats(min_value=0, max_value=10_800, allow_nan=False),
)
def test_never_serves_a_token_inside_its_margin(
    lifetime: float, margin: float, query_after: float
) -> None:
    """For any (set time, expiry, query time) schedule, get serves iff now < expiry - margin."""
    clock = ManualUtcClock()
    cache = TokenCache(refresh_margin=timedelta(seconds=margin), clock=clock)
    entry = cache.set(SCOPE, "tok", clock.now + timedelta(seconds=lifetime))
    clock.advance(query_after)
    served = cache.get(SCOPE)
    outside_margin = clock.now < entry.expires_on - timedelta(seconds=margin)
    assert (served == "tok") is outside_margin
    if served is not None:
        assert entry.seconds_to_expiry(clock.now) > margin


@settings(max_examples=100, deadline=None)
@given(epoch=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_epoch_expiry_round_trips(epoch: float) -> None:
    """Any epoch-seconds expiry is stored as the same UTC instant (to the microsecond)."""
    entry = TokenCache().set(SCOPE, "tok", epoch)
    assert entry.expires_on.tzinfo is UTC
    assert abs(entry.expires_on.timestamp() - epoch) < 1e-5
