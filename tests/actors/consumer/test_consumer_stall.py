"""The stall decision: idle too long while an unpaused partition has records to read."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.stall import PartitionProgress, lag, stalled

progress = st.builds(
    PartitionProgress,
    highwater=st.none() | st.integers(min_value=0, max_value=100),
    position=st.none() | st.integers(min_value=0, max_value=100),
    paused=st.booleans(),
)


@given(
    st.lists(progress, max_size=6),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0.1, max_value=50),
)
def test_stalled_iff_idle_past_timeout_with_unpaused_lag(
    partitions: list[PartitionProgress], idle_for: float, timeout: float
) -> None:
    """The decision is: idle longer than the timeout and some unpaused partition lags."""
    lagging = [
        p
        for p in partitions
        if not p.paused
        and p.highwater is not None
        and p.position is not None
        and p.highwater > p.position
    ]
    assert stalled(partitions, idle_for=idle_for, timeout=timeout) is (
        idle_for > timeout and bool(lagging)
    )


def test_paused_partitions_with_lag_are_not_a_stall() -> None:
    """Lag on a paused partition is on purpose, so it never counts as a stall."""
    partitions = [PartitionProgress(highwater=50, position=10, paused=True)]
    assert not stalled(partitions, idle_for=1000.0, timeout=1.0)


def test_unknown_highwater_means_unknown_lag() -> None:
    """A partition never fetched from has unknown lag and cannot make a stall."""
    assert lag(PartitionProgress(highwater=None, position=3, paused=False)) is None
    assert not stalled(
        [PartitionProgress(highwater=None, position=3, paused=False)], idle_for=10, timeout=1
    )


def test_position_past_the_highwater_is_no_lag() -> None:
    """A position beyond the high watermark (seek past the end) counts as zero lag."""
    assert lag(PartitionProgress(highwater=5, position=9, paused=False)) == 0
