"""Which offset of each partition may be committed without losing a record.

Records of one partition finish out of order (different keys run concurrently), so the
tracker keeps, per partition, the fetched offsets in fetch order with a finished flag
each, and the watermark is the first unfinished of them (or, with none unfinished, the
offset after the last finished one). Kafka offsets are not contiguous (compaction,
transaction markers), which is why the watermark is read from the fetched offsets
rather than computed as "last finished + 1".

Costs, O(1) amortized per record: `track` appends a batch and returns the sequence
number of its first record (the dispatcher gives each record its number, so finishing
needs no lookup); `finish` sets a flag and moves the head over the finished prefix,
each record being passed over once; the finished prefix is dropped from the lists once
it is at least half of them, so each record is copied at most once on average.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

__all__ = ["PartitionOffsets"]

_COMPACT_AT: Final = 1024
"""Drop the finished prefix once it is this long and at least half the lists."""


class PartitionOffsets:
    """The unfinished records of one partition and the offset that is safe to commit."""

    __slots__ = (
        "_base",
        "_done",
        "_head",
        "_last_finished",
        "_offsets",
        "_unfinished",
        "committed",
        "released",
        "running",
    )

    def __init__(self) -> None:
        self._offsets: list[int] = []
        """Tracked offsets in fetch order, from sequence number `_base` on."""
        self._done: list[bool] = []
        self._base = 0
        self._head = 0
        """Index of the first unfinished record in the lists (their length if none)."""
        self._unfinished = 0
        self._last_finished: int | None = None
        """The offset of the last record of the finished prefix once it was dropped."""
        self.committed: int | None = None
        """The last offset committed to the broker (the next record to read after a restart)."""
        self.released = False
        """Set once the partition is being revoked or was reassigned: none of its records
        may start any more."""
        self.running = 0
        """Records of this partition handed to the handler and not back yet (the
        dispatcher's count: a revocation waits for it to reach 0)."""

    @property
    def in_flight(self) -> int:
        """How many tracked records are not finished yet (queued or running)."""
        return self._unfinished

    def rewound_by(self, first: int) -> bool:
        """True when a fetch starting at `first` lies at or before what this tracker has
        seen: the client moved the position back (a broker that lost records answered
        OffsetOutOfRange and aiokafka reset it by auto_offset_reset)."""
        below_commit = self.committed is not None and first < self.committed
        last = self._offsets[-1] if self._offsets else self._last_finished
        return below_commit or (last is not None and first <= last)

    def track(self, offsets: Sequence[int]) -> int:
        """Note that the records at `offsets` (ascending) were fetched and are not finished;
        returns the sequence number of the first (the next ones follow it)."""
        first_seq = self._base + len(self._offsets)
        if not offsets:
            return first_seq
        first = offsets[0]
        if self.committed is not None and first < self.committed:
            raise ValueError(f"offset {first} is below the committed offset {self.committed}")
        last = self._offsets[-1] if self._offsets else self._last_finished
        if last is not None and first <= last:
            raise ValueError(f"offset {first} is not after the last tracked {last}")
        self._offsets.extend(offsets)
        self._done.extend([False] * len(offsets))
        self._unfinished += len(offsets)
        return first_seq

    def finish(self, seq: int) -> None:
        """Note that the record with sequence number `seq` was handled, dead-lettered or
        skipped; finishing one twice, or one never tracked, is a bug and raises."""
        index = seq - self._base
        done = self._done
        if not 0 <= index < len(done) or done[index]:
            raise ValueError(f"record #{seq} is not tracked or already finished")
        done[index] = True
        self._unfinished -= 1
        head = self._head
        if index != head:
            return
        end = len(done)
        while head < end and done[head]:
            head += 1
        self._head = head
        if head >= _COMPACT_AT and head * 2 >= end:
            self._drop_finished_prefix()

    def finish_all(self, seqs: Iterable[int]) -> None:
        """`finish` each of `seqs` (a batch's records, in one call: the head moves once)."""
        base, done = self._base, self._done
        end = len(done)
        count = 0
        for seq in seqs:
            index = seq - base
            if not 0 <= index < end or done[index]:
                self._unfinished -= count
                raise ValueError(f"record #{seq} is not tracked or already finished")
            done[index] = True
            count += 1
        self._unfinished -= count
        head = self._head
        while head < end and done[head]:
            head += 1
        self._head = head
        if head >= _COMPACT_AT and head * 2 >= end:
            self._drop_finished_prefix()

    def finished(self, seq: int) -> bool:
        """Whether the record with sequence number `seq` (one that was tracked) is finished."""
        index = seq - self._base
        return index < 0 or self._done[index]

    def next_unfinished(self) -> int | None:
        """The offset of the first unfinished record, None when none is."""
        return self._offsets[self._head] if self._head < len(self._offsets) else None

    def watermark(self) -> int | None:
        """The next offset to commit: every tracked record below it is finished.

        None until something finished (committing the fetch position would say nothing).
        """
        head = self._head
        if head < len(self._offsets):
            return self._offsets[head] if head or self._last_finished is not None else None
        if self._offsets:
            return self._offsets[-1] + 1
        return None if self._last_finished is None else self._last_finished + 1

    def to_commit(self) -> int | None:
        """The watermark when it moved past the last commit, else None."""
        mark = self.watermark()
        if mark is None or (self.committed is not None and mark <= self.committed):
            return None
        return mark

    def _drop_finished_prefix(self) -> None:
        head = self._head
        self._last_finished = self._offsets[head - 1]
        del self._offsets[:head]
        del self._done[:head]
        self._base += head
        self._head = 0
