"""Restart backoff: exponential ladder, capped, with full jitter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor import Backoff

_bases = st.floats(min_value=0.0, max_value=5.0)
_factors = st.floats(min_value=1.0, max_value=10.0)
_attempts = st.integers(min_value=0, max_value=5000)


def test_without_jitter_the_delay_doubles_until_the_cap() -> None:
    """With jitter off, delays are base * factor**attempt, capped at max."""
    backoff = Backoff(base=0.5, max=3.0, factor=2.0, jitter=False)
    assert [backoff.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@given(base=_bases, extra=st.floats(0.0, 100.0), factor=_factors, attempt=_attempts)
def test_ceiling_is_monotonic_and_capped(
    base: float, extra: float, factor: float, attempt: int
) -> None:
    """The un-jittered delay never decreases with the attempt and never exceeds max."""
    backoff = Backoff(base=base, max=base + extra, factor=factor, jitter=False)
    assert backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1) <= backoff.max


@given(
    base=_bases, extra=st.floats(0.0, 100.0), factor=_factors, attempt=_attempts, seed=st.integers()
)
def test_full_jitter_stays_between_zero_and_the_ceiling(
    base: float, extra: float, factor: float, attempt: int, seed: int
) -> None:
    """Full jitter draws each delay from [0, ceiling(attempt)]."""
    backoff = Backoff(base=base, max=base + extra, factor=factor, jitter=True)
    delay = backoff.delay(attempt, uniform=random.Random(seed).uniform)
    assert 0.0 <= delay <= backoff.ceiling(attempt)


def test_zero_base_never_waits() -> None:
    """Backoff(base=0) yields zero delays whatever the attempt or jitter."""
    attempts = [0, 1, 10, 1024, 10**6]
    assert {Backoff(base=0.0, jitter=j).delay(n) for j in (True, False) for n in attempts} == {0.0}


def test_huge_attempts_saturate_at_the_cap() -> None:
    """Attempt numbers far beyond float range give max, not an overflow."""
    assert Backoff(base=0.1, max=30.0, factor=10.0, jitter=False).delay(10**6) == 30.0


@pytest.mark.parametrize(
    "kwargs",
    [{"base": -1.0}, {"base": 2.0, "max": 1.0}, {"factor": 0.5}, {"max": float("nan")}],
)
def test_nonsensical_settings_are_refused(kwargs: dict[str, float]) -> None:
    """Negative base, max below base, shrinking factor and NaN max raise ValueError."""
    with pytest.raises(ValueError):
        Backoff(**kwargs)
