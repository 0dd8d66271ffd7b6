"""The offset tracker never lets a commit pass a record that is not finished, in
whatever order records finish."""

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
        seq = tracker.track(batch)
        for index in range(len(batch)):
            tracker.finish(seq + index)
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
def test_out_of_order_finishing_commits_only_the_finished_prefix(
    batches: list[list[int]], data: st.DataObject
) -> None:
    """Finishing records in any order, the watermark is the first unfinished offset (one
    past the last once all are finished; none while the first record is unfinished)."""
    tracker = PartitionOffsets()
    tracked: list[tuple[int, int]] = []
    for batch in batches:
        seq = tracker.track(batch)
        tracked.extend((seq + index, offset) for index, offset in enumerate(batch))
    order = data.draw(st.permutations(tracked))
    first = tracked[0][1]
    unfinished = {offset for _, offset in tracked}
    for seq, offset in order:
        tracker.finish(seq)
        unfinished.discard(offset)
        if first in unfinished:
            expected = None
        else:
            expected = min(unfinished) if unfinished else tracked[-1][1] + 1
        assert tracker.watermark() == expected
        assert tracker.in_flight == len(unfinished)
    assert tracker.watermark() == tracked[-1][1] + 1


def test_a_long_run_keeps_only_its_unfinished_tail() -> None:
    """After many records finished in order behind one that is still running, the watermark
    waits at that one; once it finishes, the watermark jumps past them all."""
    tracker = PartitionOffsets()
    seq = tracker.track(range(10_000))
    for index in range(1, 10_000):
        tracker.finish(seq + index)
    assert tracker.watermark() is None
    tracker.finish(seq)
    assert tracker.watermark() == 10_000
    later = tracker.track([10_000, 10_001])
    tracker.finish(later + 1)
    assert tracker.watermark() == 10_000


def test_nothing_to_commit_before_a_record_finished() -> None:
    """A partition whose fetched records are all still in flight has nothing to commit."""
    tracker = PartitionOffsets()
    tracker.track([5, 6, 7])
    assert tracker.watermark() is None
    assert tracker.to_commit() is None


def test_to_commit_reports_only_progress_past_the_last_commit() -> None:
    """Once committed, the same watermark is not offered again; a later one is."""
    tracker = PartitionOffsets()
    seq = tracker.track([0, 1, 2])
    tracker.finish(seq)
    assert tracker.to_commit() == 1
    tracker.committed = 1
    assert tracker.to_commit() is None
    tracker.finish(seq + 2)
    assert tracker.to_commit() is None
    tracker.finish(seq + 1)
    assert tracker.to_commit() == 3


def test_finishing_twice_or_untracked_is_refused() -> None:
    """Finishing a record twice, or one never tracked, is a bug and raises."""
    tracker = PartitionOffsets()
    seq = tracker.track([3])
    tracker.finish(seq)
    with pytest.raises(ValueError, match="not tracked or already finished"):
        tracker.finish(seq)
    with pytest.raises(ValueError, match="not tracked or already finished"):
        tracker.finish(seq + 1)


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


@given(
    st.integers(min_value=1, max_value=60).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.permutations(range(n)), min_size=1, max_size=1))
    ),
    st.integers(min_value=1, max_value=8),
)
def test_finishing_in_groups_is_finishing_one_by_one(
    scenario: tuple[int, list[list[int]]], group: int
) -> None:
    """Finishing records a group at a time (`finish_all`) leaves the tracker where finishing
    the same records one by one leaves it, after every group, in any order."""
    count, (order,) = scenario
    together, alone = PartitionOffsets(), PartitionOffsets()
    first = together.track(range(count))
    alone.track(range(count))
    for start in range(0, count, group):
        seqs = [first + index for index in order[start : start + group]]
        together.finish_all(seqs)
        for seq in seqs:
            alone.finish(seq)
        assert together.watermark() == alone.watermark()
        assert together.in_flight == alone.in_flight
    assert together.watermark() == count


def test_finishing_a_group_twice_is_refused() -> None:
    """A group that holds a finished record, or one never tracked, is a bug and raises."""
    tracker = PartitionOffsets()
    seq = tracker.track([5, 6, 7])
    tracker.finish_all([seq, seq + 1])
    with pytest.raises(ValueError, match="already finished"):
        tracker.finish_all([seq + 2, seq + 1])
    with pytest.raises(ValueError, match="not tracked"):
        tracker.finish_all([seq + 9])
