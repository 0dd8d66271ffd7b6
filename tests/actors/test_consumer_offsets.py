"""The offset tracker never lets a commit pass a record that is not finished."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.offsets import PartitionOffsets


@st.composite
def offsets_and_order(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Strictly increasing offsets with gaps (compaction) and an order to finish them in."""
    gaps = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=40))
    start = draw(st.integers(min_value=0, max_value=1000))
    offsets = [start + sum(gaps[: i + 1]) for i in range(len(gaps))]
    return offsets, draw(st.permutations(offsets))


@given(offsets_and_order())
def test_watermark_never_passes_an_unfinished_record(case: tuple[list[int], list[int]]) -> None:
    """For any completion order, the watermark stays at or below every unfinished offset."""
    offsets, order = case
    tracker = PartitionOffsets()
    for offset in offsets:
        tracker.track(offset)
    unfinished = set(offsets)
    previous = None
    for offset in order:
        tracker.finish(offset)
        unfinished.discard(offset)
        mark = tracker.watermark()
        assert mark is not None
        if unfinished:
            assert mark <= min(unfinished)
        if previous is not None:
            assert mark >= previous
        previous = mark
    assert tracker.watermark() == offsets[-1] + 1
    assert tracker.in_flight == 0


@given(offsets_and_order(), st.data())
def test_forgetting_holds_the_watermark_at_the_seek_point(
    case: tuple[list[int], list[int]], data: st.DataObject
) -> None:
    """After forgetting from a seek point, the watermark never passes it until refetched."""
    offsets, order = case
    tracker = PartitionOffsets()
    for offset in offsets:
        tracker.track(offset)
    finished = order[: data.draw(st.integers(min_value=0, max_value=len(order)))]
    for offset in finished:
        tracker.finish(offset)
    unfinished = sorted(set(offsets) - set(finished))
    seek_to = unfinished[0] if unfinished else offsets[-1] + 1
    tracker.forget_from(seek_to)
    mark = tracker.watermark()
    assert mark is None or mark <= seek_to
    refetched = [offset for offset in offsets if offset >= seek_to]
    for offset in refetched:
        tracker.track(offset)
    for offset in refetched:
        tracker.finish(offset)
    if refetched or finished:
        assert tracker.watermark() == offsets[-1] + 1


def test_nothing_to_commit_before_a_record_finished() -> None:
    """A partition whose fetched records are all still in flight has nothing to commit."""
    tracker = PartitionOffsets()
    for offset in (5, 6, 7):
        tracker.track(offset)
    assert tracker.watermark() is None
    assert tracker.to_commit() is None


def test_to_commit_reports_only_progress_past_the_last_commit() -> None:
    """Once committed, the same watermark is not offered again; a later one is."""
    tracker = PartitionOffsets()
    for offset in (0, 1, 2):
        tracker.track(offset)
    tracker.finish(0)
    assert tracker.to_commit() == 1
    tracker.committed = 1
    assert tracker.to_commit() is None
    tracker.finish(2)
    assert tracker.to_commit() is None
    tracker.finish(1)
    assert tracker.to_commit() == 3


def test_finishing_an_untracked_offset_is_refused() -> None:
    """Finishing a record that was never tracked is a bug and raises."""
    tracker = PartitionOffsets()
    tracker.track(3)
    with pytest.raises(ValueError, match="not tracked"):
        tracker.finish(4)


def test_tracking_below_the_committed_offset_is_refused() -> None:
    """A record below what was committed cannot be tracked: the commit already passed it."""
    tracker = PartitionOffsets()
    tracker.committed = 10
    with pytest.raises(ValueError, match="below the committed offset"):
        tracker.track(9)
