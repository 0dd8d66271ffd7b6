"""The poison guard trips exactly when too many of the latest records were dead-lettered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.poison import PoisonGuard


@given(
    st.integers(min_value=1, max_value=30),
    st.floats(min_value=0.01, max_value=1.0),
    st.data(),
    st.lists(st.booleans(), max_size=120),
)
def test_guard_matches_the_share_of_the_last_window(
    window: int, max_share: float, data: st.DataObject, outcomes: list[bool]
) -> None:
    """After any outcomes, the guard trips iff the last window's dead-letter share is too high."""
    min_sample = data.draw(st.integers(min_value=1, max_value=window))
    guard = PoisonGuard(window=window, max_share=max_share, min_sample=min_sample)
    for index, outcome in enumerate(outcomes):
        if outcome:
            guard.observe_dead_lettered()
        else:
            guard.observe_handled()
        recent = outcomes[max(0, index + 1 - window) : index + 1]
        assert guard.sample == len(recent)
        assert guard.dead_lettered == sum(recent)
        expected = len(recent) >= min_sample and sum(recent) > max_share * len(recent)
        assert guard.storming() is expected


def test_description_names_the_evidence() -> None:
    """The message says how many of how many records were dead-lettered."""
    guard = PoisonGuard(window=4, max_share=0.5, min_sample=4)
    for _ in range(3):
        guard.observe_dead_lettered()
    guard.observe_handled()
    assert guard.storming()
    assert guard.describe() == "poison storm: 3 of last 4 records dead-lettered"


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=10), st.data())
def test_handled_records_counted_together_are_like_one_at_a_time(
    runs: list[int], data: st.DataObject
) -> None:
    """Adding a run of handled records at once leaves the guard as adding them one by one."""
    window = data.draw(st.integers(min_value=1, max_value=30))
    together = PoisonGuard(window=window, max_share=0.5, min_sample=1)
    one_by_one = PoisonGuard(window=window, max_share=0.5, min_sample=1)
    for run in runs:
        together.observe_handled(run)
        together.observe_dead_lettered()
        for _ in range(run):
            one_by_one.observe_handled()
        one_by_one.observe_dead_lettered()
        assert (together.sample, together.dead_lettered) == (
            one_by_one.sample,
            one_by_one.dead_lettered,
        )
        assert together.storming() is one_by_one.storming()


@pytest.mark.parametrize(
    ("window", "max_share", "min_sample"), [(0, 0.5, 1), (10, 0.0, 1), (10, 1.5, 1), (10, 0.5, 11)]
)
def test_impossible_windows_are_refused(window: int, max_share: float, min_sample: int) -> None:
    """A window, share or sample size that cannot make sense raises ValueError."""
    with pytest.raises(ValueError):
        PoisonGuard(window=window, max_share=max_share, min_sample=min_sample)
