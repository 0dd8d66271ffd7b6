"""RetryBudget: retries capped at a fraction of calls over a sliding window."""

from __future__ import annotations

import math
import threading

import pytest
from clocks import ManualClock
from hypothesis import given
from hypothesis import strategies as st

from core.resilience import RetryBudget


def spend_all(budget: RetryBudget) -> int:
    """Acquire retries until the budget refuses; how many it granted."""
    granted = 0
    while budget.try_acquire_retry():
        granted += 1
    return granted


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ratio", -0.1),
        ("ratio", 1.5),
        ("ratio", math.nan),
        ("window", 0.0),
        ("window", math.inf),
        ("min_retries_per_window", -1),
    ],
)
def test_invalid_budget_is_rejected_naming_the_field(field: str, value: float) -> None:
    """Out-of-range settings raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=field):
        RetryBudget(**{field: value})  # type: ignore[arg-type]


def test_floor_allows_retries_without_any_calls(clock: ManualClock) -> None:
    """A quiet service may still retry min_retries_per_window times."""
    budget = RetryBudget(ratio=0.2, min_retries_per_window=4, clock=clock)
    assert spend_all(budget) == 4


@given(
    ratio=st.floats(0.0, 1.0),
    floor=st.integers(0, 20),
    calls=st.integers(0, 500),
)
def test_retries_granted_in_a_window_are_the_larger_of_floor_and_ratio(
    ratio: float, floor: int, calls: int
) -> None:
    """Within one window the budget grants ceil(max(floor, ratio * calls)) retries."""
    budget = RetryBudget(ratio=ratio, min_retries_per_window=floor, clock=ManualClock())
    for _ in range(calls):
        budget.record_call()
    assert spend_all(budget) == math.ceil(max(floor, ratio * calls))


@given(
    ratio=st.floats(0.0, 1.0),
    runs=st.lists(st.integers(0, 100), max_size=8),
)
def test_calls_counted_in_runs_fund_what_single_calls_would(ratio: float, runs: list[int]) -> None:
    """Counting calls with `record_calls(n)` grants exactly the retries one `record_call`
    per call would."""
    in_runs = RetryBudget(ratio=ratio, min_retries_per_window=0, clock=ManualClock())
    one_by_one = RetryBudget(ratio=ratio, min_retries_per_window=0, clock=ManualClock())
    for run in runs:
        in_runs.record_calls(run)
        for _ in range(run):
            one_by_one.record_call()
    assert spend_all(in_runs) == spend_all(one_by_one)


def test_can_retry_only_looks(clock: ManualClock) -> None:
    """can_retry() answers without spending; try_acquire_retry() spends."""
    budget = RetryBudget(min_retries_per_window=1, clock=clock)
    assert budget.can_retry()
    assert budget.can_retry()
    assert budget.try_acquire_retry()
    assert not budget.can_retry()


def test_record_retry_spends_even_beyond_the_budget(clock: ManualClock) -> None:
    """record_retry() counts a retry made regardless, so later checks see it."""
    budget = RetryBudget(ratio=0.0, min_retries_per_window=2, clock=clock)
    for _ in range(3):
        budget.record_retry()
    assert not budget.can_retry()
    clock.advance(budget.window * 1.1)
    assert budget.can_retry()


def test_spent_retries_are_forgotten_once_the_window_passes(clock: ManualClock) -> None:
    """Retries older than the window (by up to one step, a tenth) no longer count."""
    budget = RetryBudget(ratio=0.0, window=10.0, min_retries_per_window=3, clock=clock)
    assert spend_all(budget) == 3
    clock.advance(5.0)
    assert not budget.can_retry()
    clock.advance(6.0)
    assert spend_all(budget) == 3


def test_calls_older_than_the_window_stop_funding_retries(clock: ManualClock) -> None:
    """Calls fund retries only while inside the window (expiring at most one step late)."""
    budget = RetryBudget(ratio=0.5, window=10.0, min_retries_per_window=0, clock=clock)
    for _ in range(10):
        budget.record_call()
    clock.advance(9.0)
    assert budget.can_retry()
    clock.advance(2.0)
    assert not budget.can_retry()


def test_window_slides_in_tenths(clock: ManualClock) -> None:
    """Calls from the older half of the window expire first while newer ones still count."""
    budget = RetryBudget(ratio=0.5, window=10.0, min_retries_per_window=0, clock=clock)
    for _ in range(4):
        budget.record_call()
    clock.advance(5.0)
    for _ in range(2):
        budget.record_call()
    clock.advance(6.0)
    assert spend_all(budget) == 1


def test_concurrent_calls_and_retries_stay_within_budget() -> None:
    """Threads recording calls and acquiring retries together never exceed the ratio."""
    clock = ManualClock()
    budget = RetryBudget(ratio=0.1, min_retries_per_window=0, clock=clock)
    granted = [0] * 8
    start = threading.Barrier(8)

    def worker(index: int) -> None:
        start.wait()
        for _ in range(2000):
            budget.record_call()
            granted[index] += budget.try_acquire_retry()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) + spend_all(budget) == math.ceil(0.1 * 8 * 2000)
