"""Restart intensity follows OTP: at most max_restarts restarts within any period."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.runtime._intensity import RestartIntensity


def test_the_restart_beyond_the_limit_is_refused_and_old_ones_expire() -> None:
    """With 2 per 5s, the third restart within 5s is refused; one at t=5 is allowed again."""
    intensity = RestartIntensity(max_restarts=2, period=5.0)
    assert [intensity.try_restart(t) for t in (0.0, 1.0, 4.9, 5.0)] == [True, True, False, True]


def test_zero_restarts_refuses_the_first() -> None:
    """max_restarts=0 escalates on the first failure."""
    assert RestartIntensity(0, 1.0).try_restart(0.0) is False


@given(
    limit=st.integers(0, 5),
    period=st.sampled_from([0.5, 1.0, 5.0]),
    gaps=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0]), max_size=40),
)
def test_accepted_restarts_never_exceed_the_limit_in_any_window(
    limit: int, period: float, gaps: list[float]
) -> None:
    """Every window of `period` seconds holds at most `limit` accepted restarts, and a
    restart is refused only when accepting it would break that."""
    intensity = RestartIntensity(limit, period)
    accepted: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        in_window = [t for t in accepted if now - t < period]
        allowed = intensity.try_restart(now)
        assert allowed == (len(in_window) < limit)
        if allowed:
            accepted.append(now)
    for t in accepted:
        assert sum(1 for u in accepted if t <= u < t + period) <= limit


@pytest.mark.parametrize(("limit", "period"), [(-1, 1.0), (1, 0.0), (1, float("inf"))])
def test_invalid_limits_are_refused(limit: int, period: float) -> None:
    """A negative limit and a non-positive or infinite period raise ValueError."""
    with pytest.raises(ValueError):
        RestartIntensity(limit, period)
