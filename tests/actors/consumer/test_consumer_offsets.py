"""The offset tracker never lets a commit pass a record that is not finished."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.offsets import PartitionOffsets


@st.composite
def fetched_batches(draw: st.DrawFn) -> list[list[int]]:
    """Strictly increasing offsets with gaps (compaction), cut into fetched batches."""
    gaps = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=40))
    start = draw(st.integers(min_value=0, max_value=1000))
    offsets = [start + sum(gaps[: i + 1]) for i in range(len(gaps))]
    cuts = draw(st.sets(st.integers(min_value=1, max_value=len(offsets)), max_size=5))
    bounds = sorted({0, len(offsets), *cuts})
    return [offsets[low:high] for low, high in itertools.pairwise(bounds)]


@given(fetched_batches())
def test_watermark_never_passes_an_unfinished_record(batches: list[list[int]]) -> None:
    """Tracking batch after batch and finishing in order, the watermark stays at or below
    every unfinished offset, never moves back, and ends after the last offset."""
    tracker = PartitionOffsets()
    previous = None
    for batch in batches:
        tracker.track(batch)
        for index in range(len(batch)):
            tracker.finish_next()
            mark = tracker.watermark()
            assert mark is not None
            if index + 1 < len(batch):
                assert mark <= batch[index + 1]
            if previous is not None:
                assert mark >= previous
            previous = mark
    assert tracker.watermark() == batches[-1][-1] + 1
    assert tracker.in_flight == 0


@given(fetched_batches(), st.data())
def test_forgetting_holds_the_watermark_at_the_seek_point(
    batches: list[list[int]], data: st.DataObject
) -> None:
    """After the unfinished records are forgotten, the watermark never passes the first of
    them until they are fetched and finished again."""
    offsets = [offset for batch in batches for offset in batch]
    tracker = PartitionOffsets()
    tracker.track(offsets)
    finished = data.draw(st.integers(min_value=0, max_value=len(offsets)))
    for _ in range(finished):
        tracker.finish_next()
    seek_to = tracker.next_unfinished()
    assert seek_to == (offsets[finished] if finished < len(offsets) else None)
    tracker.forget_unfinished()
    assert tracker.in_flight == 0
    mark = tracker.watermark()
    if seek_to is not None:
        assert mark is None or mark <= seek_to
    refetched = offsets[finished:]
    tracker.track(refetched)
    for _ in refetched:
        tracker.finish_next()
    if offsets:
        assert tracker.watermark() == offsets[-1] + 1


def test_nothing_to_commit_before_a_record_finished() -> None:
    """A partition whose fetched records are all still in flight has nothing to commit."""
    tracker = PartitionOffsets()
    tracker.track([5, 6, 7])
    assert tracker.watermark() is None
    assert tracker.to_commit() is None


def test_to_commit_reports_only_progress_past_the_last_commit() -> None:
    """Once committed, the same watermark is not offered again; a later one is."""
    tracker = PartitionOffsets()
    tracker.track([0, 1, 2])
    tracker.finish_next()
    assert tracker.to_commit() == 1
    tracker.committed = 1
    assert tracker.to_commit() is None
    tracker.finish_next()
    tracker.finish_next()
    assert tracker.to_commit() == 3


def test_finishing_with_nothing_in_flight_is_refused() -> None:
    """Finishing more records than were tracked is a bug and raises."""
    tracker = PartitionOffsets()
    tracker.track([3])
    tracker.finish_next()
    with pytest.raises(ValueError, match="no tracked record is unfinished"):
        tracker.finish_next()


def test_tracking_below_the_committed_offset_is_refused() -> None:
    """A record below what was committed cannot be tracked: the commit already passed it."""
    tracker = PartitionOffsets()
    tracker.committed = 10
    with pytest.raises(ValueError, match="below the committed offset"):
        tracker.track([9, 10])


def test_tracking_out_of_order_is_refused() -> None:
    """A batch that does not start after the last tracked offset would break the order."""
    tracker = PartitionOffsets()
    tracker.track([4, 5])
    with pytest.raises(ValueError, match="not after the last tracked"):
        tracker.track([5, 6])


@given(
    tracked=st.lists(st.integers(0, 50), min_size=1, max_size=10, unique=True),
    first=st.integers(0, 60),
)
def test_a_rewind_is_a_fetch_at_or_before_the_last_tracked_offset(
    tracked: list[int], first: int
) -> None:
    """`rewound_by` holds exactly when a fetch would start at or before the last offset the
    tracker saw, i.e. exactly when `track` would refuse it as out of order."""
    offsets = PartitionOffsets()
    offsets.track(sorted(tracked))
    assert offsets.rewound_by(first) is (first <= max(tracked))
    if not offsets.rewound_by(first):
        offsets.track([first])
    else:
        with pytest.raises(ValueError, match="not after the last tracked"):
            offsets.track([first])
