"""Lanes of spans: what goes in comes out once per lane, in offset order, counted right.

A lane queues spans (slices of a fetched batch), and runs take and give back parts of
them; these properties hold for any fetches, run sizes and records left unfinished.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispatch_testing import message
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.lanes import Lanes, Span, spans_of
from actors.consumer.offsets import PartitionOffsets
from actors.consumer.settings import Ordering


def _offsets(spans: Sequence[Span]) -> list[int]:
    return [span.messages[p].offset for span in spans for p in span.positions]


@given(
    ordering=st.sampled_from(["key", "partition", "none"]),
    fetches=st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=12), max_size=6),
    sizes=st.lists(st.integers(1, 8), min_size=1, max_size=40),
    unfinished=st.lists(st.booleans(), min_size=1, max_size=40),
)
def test_each_lane_yields_its_records_once_in_offset_order(
    ordering: Ordering, fetches: list[list[int]], sizes: list[int], unfinished: list[bool]
) -> None:
    """Runs of any size, some giving back their last record unfinished, take every record
    of each lane exactly once as finished, in offset order, and `queued` counts what is
    left."""
    lanes, tracker, cut = Lanes(), PartitionOffsets(), spans_of(ordering, batches=False)
    offset = 0
    for keys in fetches:
        fetched = [message(offset + i, key=b"k%d" % key) for i, key in enumerate(keys)]
        offset += len(keys)
        lanes.add(cut(fetched, tracker, tracker.track([m.offset for m in fetched])))
    finished: dict[object, list[int]] = {}
    turn = 0
    while (run := lanes.take(sizes[turn % len(sizes)])) is not None:
        lane = run[0].lane
        assert all(span.lane == lane for span in run)
        taken = _offsets(run)
        assert taken == sorted(taken)
        leave_one = unfinished[turn % len(unfinished)] and len(taken) > 1
        done = len(taken) - 1 if leave_one else len(taken)
        for span in run:
            for position in span.positions:
                if done > 0:
                    tracker.finish(span.first_seq + position)
                    finished.setdefault(lane, []).append(span.messages[position].offset)
                    done -= 1
        back = [left for left in map(Span.unfinished, run) if left is not None]
        lanes.release(lane, back)
        turn += 1
    assert lanes.queued == 0
    assert tracker.in_flight == 0
    every = sorted(o for offsets in finished.values() for o in offsets)
    assert every == list(range(offset))
    for offsets in finished.values():
        assert offsets == sorted(offsets)


@given(keys=st.lists(st.integers(0, 3), min_size=1, max_size=20))
def test_a_revoked_partitions_spans_are_dropped_and_counted(keys: list[int]) -> None:
    """Dropping released spans takes every queued record of the partition out of the count."""
    lanes, tracker = Lanes(), PartitionOffsets()
    fetched = [message(i, key=b"k%d" % key) for i, key in enumerate(keys)]
    lanes.add(spans_of("key", batches=False)(fetched, tracker, tracker.track(range(len(keys)))))
    assert lanes.queued == len(keys)
    tracker.released = True
    assert lanes.drop_released() == len(keys)
    assert lanes.queued == 0
    assert lanes.take(10) is None
