"""Which offset of each partition may be committed without losing a record.

Kafka offsets are not contiguous (compaction, transaction markers), so the watermark is
not "last done + 1" but "the lowest offset fetched and not yet finished" (or, with
nothing in flight, the offset after the highest finished one). Everything below it was
handled or dead-lettered. That stays correct when records of one partition finish out of
order, so partitions (or records) could later be processed concurrently.

A record must be `track`ed before any later record of its partition finishes: the
consumer tracks a whole fetched batch before handing out its first record.
"""

from __future__ import annotations

import heapq

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    """The in-flight records of one partition and the offset that is safe to commit."""

    def __init__(self) -> None:
        self._pending: set[int] = set()
        self._heap: list[int] = []
        self._highest_done: int | None = None
        self.committed: int | None = None
        """The last offset committed to the broker (the next record to read after a restart)."""

    @property
    def in_flight(self) -> int:
        """How many tracked records are not finished yet."""
        return len(self._pending)

    def track(self, offset: int) -> None:
        """Note that the record at `offset` was fetched and is not finished yet."""
        if self.committed is not None and offset < self.committed:
            raise ValueError(f"offset {offset} is below the committed offset {self.committed}")
        if offset not in self._pending:
            self._pending.add(offset)
            heapq.heappush(self._heap, offset)

    def finish(self, offset: int) -> None:
        """Note that the record at `offset` was handled or dead-lettered."""
        if offset not in self._pending:
            raise ValueError(f"offset {offset} was not tracked or is already finished")
        self._pending.discard(offset)
        if self._highest_done is None or offset > self._highest_done:
            self._highest_done = offset

    def forget_from(self, offset: int) -> None:
        """Untrack every unfinished record at or above `offset` (they will be fetched again).

        Records at or above `offset` that already finished will be fetched again too, so
        the watermark is held at `offset` until they finish once more.
        """
        self._pending = {pending for pending in self._pending if pending < offset}
        self._heap = sorted(self._pending)
        if self._highest_done is not None and self._highest_done >= offset:
            self._highest_done = offset - 1

    def watermark(self) -> int | None:
        """The next offset to commit: every tracked record below it is finished.

        None until something finished (committing the fetch position would say nothing).
        """
        if self._highest_done is None:
            return None
        while self._heap and self._heap[0] not in self._pending:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else self._highest_done + 1

    def to_commit(self) -> int | None:
        """The watermark when it moved past the last commit, else None."""
        mark = self.watermark()
        if mark is None or (self.committed is not None and mark <= self.committed):
            return None
        return mark
