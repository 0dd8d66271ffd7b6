"""Lanes: which fetched records may run at the same time, and which may start next.

A lane is a queue of records that run one unit at a time, in offset order. What makes
a lane is the ordering:

| ordering    | lane of a record                     | runs concurrently        |
|-------------|--------------------------------------|--------------------------|
| "key"       | its partition and key (a null key:   | different keys           |
|             | its partition's null-key lane)       |                          |
| "partition" | its partition                        | different partitions     |
| "none"      | itself                               | any records              |

A batch handler's lane is the partition whatever the ordering (a batch is one
partition's records in offset order). How many lanes run at once is the dispatcher's
`max_in_flight`: sequential handling is one lane running at a time, not another path.

A lane queues spans, not records: a span is a lane's share of one fetched batch (the
fetched list itself, shared, and the positions in it of the lane's records), so a
partition lane holds one entry per fetch whatever its size, and a key lane one per
fetch that had records of that key. Nothing is allocated per record on the way from
the fetch to the handler: queuing, taking and releasing cost per span.

A lane waiting to run is in the ready queue once, in the order it became ready; a lane
that ran goes to the back of that queue if it has more records, so a hot key takes its
turn with the others instead of holding a worker. Records of a partition being revoked
are dropped from their lanes at once (they are fetched again by the next owner), so
they hold no memory and no worker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from actors.consumer.offsets import PartitionOffsets
from actors.consumer.settings import Ordering

__all__ = ["LaneKey", "Lanes", "Span", "spans_of"]

LaneKey = Hashable


@dataclass(slots=True)
class Span:
    """Records of one lane from one fetched batch, in offset order: `messages[p]` for each
    `p` in `positions`, whose sequence number in `tracker` is `first_seq + p`."""

    messages: Sequence[Any]
    """The fetched aiokafka ConsumerRecords of one partition (the whole fetch, shared)."""
    tracker: PartitionOffsets
    first_seq: int
    """The sequence number of `messages[0]` in `tracker`."""
    positions: Sequence[int]
    """Indices into `messages` (a range for a whole partition's fetch)."""
    lane: LaneKey

    def __len__(self) -> int:
        return len(self.positions)

    def split(self, count: int) -> Span:
        """Cut off and return the first `count` records; this span keeps the rest."""
        head = Span(self.messages, self.tracker, self.first_seq, self.positions[:count], self.lane)
        self.positions = self.positions[count:]
        return head

    def unfinished(self) -> Span | None:
        """This span's records not finished in their tracker (None when all are)."""
        finished, first = self.tracker.finished, self.first_seq
        left = [p for p in self.positions if not finished(first + p)]
        return Span(self.messages, self.tracker, first, left, self.lane) if left else None


Spans = Callable[[Sequence[Any], PartitionOffsets, int], list[Span]]
"""Cuts one partition's fetched records (tracked from the given sequence number) into
the spans of their lanes."""


def spans_of(ordering: Ordering, *, batches: bool) -> Spans:
    """How a partition's fetched records are cut into lanes under `ordering` (the table)."""
    if batches or ordering == "partition":
        return _by_partition
    if ordering == "key":
        return _by_key
    return _by_record


def _by_partition(messages: Sequence[Any], tracker: PartitionOffsets, seq: int) -> list[Span]:
    first = messages[0]
    return [Span(messages, tracker, seq, range(len(messages)), (first.topic, first.partition))]


def _by_key(messages: Sequence[Any], tracker: PartitionOffsets, seq: int) -> list[Span]:
    positions: dict[Any, list[int]] = {}
    for position, message in enumerate(messages):
        key = message.key
        found = positions.get(key)
        if found is None:
            positions[key] = [position]
        else:
            found.append(position)
    first = messages[0]
    topic, partition = first.topic, first.partition
    return [
        Span(messages, tracker, seq, found, (topic, partition, key))
        for key, found in positions.items()
    ]


def _by_record(messages: Sequence[Any], tracker: PartitionOffsets, seq: int) -> list[Span]:
    return [
        Span(
            messages, tracker, seq, range(position, position + 1), (m.topic, m.partition, m.offset)
        )
        for position, m in enumerate(messages)
    ]


class Lanes:
    """The queued spans by lane, and the lanes ready to run (see the module docstring)."""

    def __init__(self) -> None:
        self._queues: dict[LaneKey, deque[Span]] = {}
        """Lanes with queued records or a unit running; a running lane is in `_running`."""
        self._ready: deque[LaneKey] = deque()
        self._running: set[LaneKey] = set()
        self.queued = 0
        """Records queued, not started."""

    @property
    def ready(self) -> int:
        """How many lanes wait for a worker."""
        return len(self._ready)

    def add(self, spans: Iterable[Span]) -> None:
        """Queue each of `spans` at the back of its lane."""
        queues, ready = self._queues, self._ready
        added = 0
        for span in spans:
            lane = span.lane
            queue = queues.get(lane)
            if queue is None:
                queue = queues[lane] = deque()
                ready.append(lane)
            queue.append(span)
            added += len(span)
        self.queued += added

    def take(self, most: int) -> list[Span] | None:
        """Up to `most` records from the front of the next ready lane, now running; None
        when no lane is ready."""
        if not self._ready:
            return None
        lane = self._ready.popleft()
        self._running.add(lane)
        return self.take_more(lane, most)

    def take_more(self, lane: LaneKey, most: int) -> list[Span]:
        """Up to `most` more records from the front of `lane`, which is running (a run, or
        a batch that waits to fill)."""
        queue = self._queues[lane]
        taken: list[Span] = []
        count = 0
        while queue and count < most:
            span = queue[0]
            if len(span) > most - count:
                span = span.split(most - count)
            else:
                queue.popleft()
            taken.append(span)
            count += len(span)
        self.queued -= count
        return taken

    def release(self, lane: LaneKey, back: Sequence[Span] = ()) -> None:
        """`lane`'s unit ended; `back` (its records not finished, in offset order) go back
        to the front of the lane unless their partition is being revoked."""
        self._running.discard(lane)
        queue = self._queues[lane]
        for span in reversed(back):
            if not span.tracker.released:
                queue.appendleft(span)
                self.queued += len(span)
        if queue:
            self._ready.append(lane)
        else:
            del self._queues[lane]

    def drop_released(self) -> int:
        """Drop the queued records of partitions being revoked; returns how many."""
        dropped = 0
        for lane, queue in list(self._queues.items()):
            kept = deque(span for span in queue if not span.tracker.released)
            dropped += sum(map(len, queue)) - sum(map(len, kept))
            if kept or lane in self._running:
                self._queues[lane] = kept
            else:
                del self._queues[lane]
        self._ready = deque(lane for lane in self._ready if lane in self._queues)
        self.queued -= dropped
        return dropped
