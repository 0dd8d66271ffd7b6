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

A lane waiting to run is in the ready queue once, in the order it became ready; a lane
that ran goes to the back of that queue if it has more records, so a hot key takes its
turn with the others instead of holding a worker. Records of a partition being revoked
are dropped from their lanes at once (they are fetched again by the next owner), so
they hold no memory and no worker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from actors.consumer.offsets import PartitionOffsets
from actors.consumer.settings import Ordering

__all__ = ["LaneKey", "Lanes", "Work", "lane_of"]

LaneKey = Hashable
_NO_LANE: LaneKey = object()


@dataclass(slots=True)
class Work:
    """One fetched record and where it is tracked."""

    message: Any
    """The aiokafka ConsumerRecord."""
    tracker: PartitionOffsets
    seq: int
    """Its sequence number in `tracker`."""
    lane: LaneKey
    done: bool = False
    """Set once its outcome was booked (its offset finished)."""


def lane_of(ordering: Ordering, *, batches: bool) -> Callable[[Any], LaneKey]:
    """The function giving a fetched record's lane under `ordering` (see the table)."""
    if batches or ordering == "partition":
        return lambda m: (m.topic, m.partition)
    if ordering == "key":
        return lambda m: (m.topic, m.partition, m.key)
    return lambda m: (m.topic, m.partition, m.offset)


class Lanes:
    """The queued records by lane, and the lanes ready to run (see the module docstring)."""

    def __init__(self) -> None:
        self._queues: dict[LaneKey, deque[Work]] = {}
        """Lanes with queued records or a unit running; a running lane is in `_running`."""
        self._ready: deque[LaneKey] = deque()
        self._running: set[LaneKey] = set()
        self.queued = 0
        """Records queued, not started."""

    def add(self, works: Iterable[Work]) -> None:
        """Queue each of `works` at the back of its lane (a run of records of one lane
        looks its lane up once)."""
        queues, ready = self._queues, self._ready
        lane: LaneKey = _NO_LANE
        queue: deque[Work] | None = None
        added = 0
        for work in works:
            if queue is None or work.lane != lane:
                lane = work.lane
                queue = queues.get(lane)
                if queue is None:
                    queue = queues[lane] = deque()
                    ready.append(lane)
            queue.append(work)
            added += 1
        self.queued += added

    def take(self, most: int) -> list[Work] | None:
        """Up to `most` records from the front of the next ready lane, now running; None
        when no lane is ready."""
        if not self._ready:
            return None
        lane = self._ready.popleft()
        queue = self._queues[lane]
        count = min(most, len(queue))
        unit = [queue.popleft() for _ in range(count)]
        self.queued -= count
        self._running.add(lane)
        return unit

    def take_more(self, lane: LaneKey, most: int) -> list[Work]:
        """Up to `most` more records from the front of `lane`, which is running (a batch
        that waits to fill)."""
        queue = self._queues[lane]
        count = min(most, len(queue))
        more = [queue.popleft() for _ in range(count)]
        self.queued -= count
        return more

    def release(self, lane: LaneKey, back: Iterable[Work] = ()) -> None:
        """`lane`'s unit ended; `back` (records it did not finish, in offset order) go back
        to the front of the lane unless their partition is being revoked."""
        self._running.discard(lane)
        queue = self._queues[lane]
        for work in reversed(list(back)):
            if not work.tracker.released:
                queue.appendleft(work)
                self.queued += 1
        if queue:
            self._ready.append(lane)
        else:
            del self._queues[lane]

    def drop_released(self) -> int:
        """Drop the queued records of partitions being revoked; returns how many."""
        dropped = 0
        for lane, queue in list(self._queues.items()):
            kept = deque(work for work in queue if not work.tracker.released)
            dropped += len(queue) - len(kept)
            if kept or lane in self._running:
                self._queues[lane] = kept
            else:
                del self._queues[lane]
        self._ready = deque(lane for lane in self._ready if lane in self._queues)
        self.queued -= dropped
        return dropped
