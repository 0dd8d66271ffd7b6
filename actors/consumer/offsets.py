"""Which offset of each partition may be committed without losing a record.

A partition's records are handled in fetch order, so what is finished is always a prefix
of what was fetched: the tracker keeps the fetched offsets not yet finished, in order,
and the watermark is the first of them (or, with nothing in flight, the offset after the
last finished one). Kafka offsets are not contiguous (compaction, transaction markers),
which is why the watermark is read from the fetched offsets rather than computed as
"last finished + 1" while records are in flight.

A fetched batch is tracked before its first record is handled, in one call; finishing a
record is a counter bump, so the per-record cost stays negligible next to the handler.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    """The in-flight records of one partition and the offset that is safe to commit."""

    __slots__ = ("_fetched", "_finished", "_last_finished", "committed", "released")

    def __init__(self) -> None:
        self._fetched: list[int] = []
        """Tracked offsets in fetch order; the first `_finished` of them are finished."""
        self._finished = 0
        self._last_finished: int | None = None
        self.committed: int | None = None
        """The last offset committed to the broker (the next record to read after a restart)."""
        self.released = False
        """Set once the partition was revoked or reassigned: its records must not be handled."""

    @property
    def in_flight(self) -> int:
        """How many tracked records are not finished yet."""
        return len(self._fetched) - self._finished

    def rewound_by(self, first: int) -> bool:
        """True when a fetch starting at `first` lies at or before what this tracker has
        seen: the client moved the position back (a broker that lost records answered
        OffsetOutOfRange and aiokafka reset it by auto_offset_reset)."""
        below_commit = self.committed is not None and first < self.committed
        return below_commit or bool(self._fetched and first <= self._fetched[-1])

    def track(self, offsets: Sequence[int]) -> None:
        """Note that the records at `offsets` (ascending) were fetched and are not finished."""
        if not offsets:
            return
        first = offsets[0]
        if self.committed is not None and first < self.committed:
            raise ValueError(f"offset {first} is below the committed offset {self.committed}")
        if self._fetched and first <= self._fetched[-1]:
            raise ValueError(f"offset {first} is not after the last tracked {self._fetched[-1]}")
        self._drop_finished()
        self._fetched.extend(offsets)

    def finish_next(self) -> None:
        """Note that the first unfinished record (in fetch order) was handled or dead-lettered."""
        if self._finished >= len(self._fetched):
            raise ValueError("no tracked record is unfinished")
        self._finished += 1

    def next_unfinished(self) -> int | None:
        """The offset of the first unfinished record, None when none is in flight."""
        return self._fetched[self._finished] if self._finished < len(self._fetched) else None

    def forget_unfinished(self) -> None:
        """Untrack every unfinished record (they will be fetched again from the first one)."""
        self._drop_finished()
        self._fetched.clear()

    def watermark(self) -> int | None:
        """The next offset to commit: every tracked record below it is finished.

        None until something finished (committing the fetch position would say nothing).
        """
        finished = self._finished
        last = self._fetched[finished - 1] if finished else self._last_finished
        if last is None:
            return None
        return self._fetched[finished] if finished < len(self._fetched) else last + 1

    def _drop_finished(self) -> None:
        if self._finished:
            self._last_finished = self._fetched[self._finished - 1]
            del self._fetched[: self._finished]
            self._finished = 0

    def to_commit(self) -> int | None:
        """The watermark when it moved past the last commit, else None."""
        mark = self.watermark()
        if mark is None or (self.committed is not None and mark <= self.committed):
            return None
        return mark
