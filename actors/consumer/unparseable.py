"""Going on after a fetch that aiokafka could not parse: hand over what can be read, set
aside what cannot, and move every partition strictly forward.

aiokafka parses a fetched batch in one go: one record with a header key that is not
UTF-8 raises UnicodeDecodeError out of `getmany` (CorruptRecordException without the C
extension), and so does a record whose framing is broken or a batch whose CRC is wrong.
What this does to the stream (aiokafka 0.14, checked against a broker):

- The partition does not move: every later `getmany` fetches the same batch and raises
  again. Seeking to the record after the bad one does not help, since the batch is
  parsed from its start again (records below the position are parsed, then dropped).
- The records already drained from other partitions in the same `getmany` are lost:
  their positions moved past them, and the exception dropped the result.
- The records before the bad one in its own batch never reach the caller.

`recover` undoes all three. Given the offset the pipeline expects next for each
partition (`fetch_positions` right before the failing `getmany`), it seeks every
partition back there, then for each one fetches its bytes from that offset itself
(actors.consumer.raw_fetch) and runs aiokafka's own parser over them batch by batch, to
find exactly the batches aiokafka cannot read. A partition without one is left at its
expected offset: the normal fetch path reads it again. For a partition with some, the
records of the other batches up to the last bad one, and every record of the bad ones
the tolerant reader (actors.consumer.tolerant_batches) can read, are returned to be
handed over as normal records; what cannot be read is returned as `Unparseable`, with
its raw bytes for the dead-letter topic; and the partition is sought past the last bad
batch (all bad batches of one fetch cost one recovery). Every partition that had a bad
batch ends strictly after its expected offset, so a second recovery never
meets the same batch: the stream cannot loop.

A header key that is not UTF-8 does not make its record unparseable: the record is well
framed, so it is handed over with U+FFFD for the bad bytes, as Apache Kafka's Java
consumer delivers it (a lone surrogate from `surrogateescape` would make the record
fail again wherever it is encoded: a forward, a dead-letter copy, a JSON log line). The
original key bytes are logged, as a WARNING naming the partition and offset.

What is set aside is logged at ERROR with topic, partition, offset(s) and the reason.
Its raw bytes are the record's own bytes from its length prefix (decompressed, when its
batch was compressed), or the whole batch when the batch cannot be trusted or read (a
CRC mismatch, a codec failure, a broken length); `dead_letter_record()` wraps them as a
Record whose value is those bytes, for DeadLetterWriter.write with `error`.

A bad batch whose own header cannot say where it ends (bytes after the last whole batch
that cannot be a batch; a damaged magic byte or base offset, which the CRC does not
cover) skips exactly one offset per recovery: the smallest step that still moves on.

How the fetch path calls it (the caller hands over nothing of a fetch that raised):

    start = fetch_positions(consumer)              # sync, before every getmany
    try:
        batch = await consumer.getmany(timeout_ms=..., max_records=...)
    except FETCH_PARSE_ERRORS:
        recovery = await recover(consumer, start)
        unparseable_total.inc(len(recovery.unparseable))
        for part in recovery.unparseable:           # write these first (acks=all)
            await dead_letters.write(dlq_topic_of(part.topic), part.dead_letter_record(),
                                     part.error, ErrorCategory.PERMANENT)
        batch = recovery.records                    # then hand these over as a batch

The records are aiokafka ConsumerRecords, per partition in offset order, to be handed
over before anything fetched later from the same partition. Only they are tracked for
commits: a dead-lettered part is acknowledged before the records after it are handed
over, so no commit passes it before it is stored (if it is the last thing before a
restart, it may be dead-lettered again: at least once).

The consumer must be read_uncommitted without deserializers (as the pipeline's is): the
bytes fetched here are not filtered for aborted transactions. Besides raw_fetch's, the
aiokafka internals used are `consumer._subscription.subscription.assignment` (positions
before a fetch, without awaiting) and the fetcher's `_check_crcs`, `_isolation_level`
and deserializers (checked against aiokafka 0.14).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    IllegalOperation,
    IllegalStateError,
    UnsupportedCodecError,
)
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord

from actors.consumer.raw_fetch import fetch_raw
from actors.consumer.tolerant_batches import (
    ParsedBatch,
    ParsedRecord,
    Unframeable,
    parse_batch,
    split_batches,
)
from actors.messages import Record

__all__ = [
    "FETCH_PARSE_ERRORS",
    "BadBatch",
    "FetchStart",
    "Recovery",
    "Unparseable",
    "UnparseableRecordError",
    "examine",
    "fetch_positions",
    "recover",
]

_log = logging.getLogger(__name__)

FETCH_PARSE_ERRORS: Final = (CorruptRecordException, UnicodeDecodeError)
"""What `getmany` raises for a batch it cannot parse: UnicodeDecodeError comes from
aiokafka's C extension for a header key that is not UTF-8, CorruptRecordException for the
rest (and for that key too without the extension)."""

_READ_COMMITTED: Final = 1
_KEY_BYTES_LOGGED: Final = 64


class UnparseableRecordError(Exception):
    """Bytes of a partition could not be read as records; the dead-letter copy holds them."""


@dataclass(frozen=True, slots=True)
class Unparseable:
    """Bytes at `first_offset`..`last_offset` of a partition that could not be read."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    reason: str
    raw: bytes

    def describe(self) -> str:
        """Where and why, in one line."""
        span = (
            f"offset {self.first_offset}"
            if self.first_offset == self.last_offset
            else f"offsets {self.first_offset}..{self.last_offset}"
        )
        return f"{self.topic}[{self.partition}] {span} cannot be parsed: {self.reason}"

    @property
    def error(self) -> UnparseableRecordError:
        """The failure to dead-letter it with (category PERMANENT: it never parses)."""
        return UnparseableRecordError(
            f"{self.describe()}; the value holds its {len(self.raw)} raw bytes "
            "(Kafka record batch format v2)"
        )

    def dead_letter_record(self) -> Record:
        """A Record at `first_offset` whose value is the raw bytes (no key, no headers)."""
        return Record(self.topic, self.partition, self.first_offset, None, self.raw, ())


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a recovery found; see `recover`."""

    records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = field(default_factory=dict)
    """Records to hand over, per partition with a bad batch, in offset order: those
    from the expected offset up to the bad batch, then the readable ones of it."""
    unparseable: list[Unparseable] = field(default_factory=list)
    """What could not be read, in partition and offset order (skipped, to dead-letter)."""
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    """Where each partition's fetching resumes: its expected offset, or for a partition
    with a bad batch the offset after that batch (always above the expected offset)."""


@dataclass(frozen=True, slots=True)
class FetchStart:
    """Where each partition stood right before a `getmany`, and under which assignment."""

    offsets: Mapping[TopicPartition, int]
    assignment: object | None = None
    """aiokafka's assignment the offsets belong to; None when the caller vouches that they
    still hold."""


def fetch_positions(consumer: Any) -> FetchStart:
    """The position of every assigned partition that has one, read without awaiting:
    taken right before `getmany`, it is the offset the pipeline expects next."""
    assignment = _assignment(consumer)
    if assignment is None:
        return FetchStart({})
    positions: dict[TopicPartition, int] = {}
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        if state.has_valid_position:
            positions[tp] = state.position
    return FetchStart(positions, assignment)


def _assignment(consumer: Any) -> Any:
    subscription = consumer._subscription.subscription
    return subscription.assignment if subscription is not None else None


async def recover(consumer: Any, start: FetchStart) -> Recovery:
    """Recover from a `getmany` that raised one of FETCH_PARSE_ERRORS (module docstring).

    `start.offsets` maps each assigned partition to the offset the pipeline expects to
    fetch next (`fetch_positions` before the failing call). A partition missing from it
    (it had no position yet), and every partition when the assignment changed during the
    call (a rebalance: what was handed over before it is no longer this consumer's
    concern), starts from its committed offset. Paused partitions are left alone. The
    caller must not fetch while this runs. Raises KafkaError when a partition cannot be
    fetched (nothing is skipped then: every partition is back at its expected offset),
    UnsupportedCodecError when a batch needs a codec library that is not installed, and
    RuntimeError when no batch that aiokafka cannot parse was found (a retry would meet
    the same failure)."""
    expected = start.offsets
    if start.assignment is not None and start.assignment is not _assignment(consumer):
        _log.info("the assignment changed during the failed fetch: recovering from commits")
        expected = {}
    fetcher = consumer._fetcher
    if fetcher._isolation_level == _READ_COMMITTED:
        raise ValueError("recovering unparseable records needs a read_uncommitted consumer")
    if fetcher._key_deserializer is not None or fetcher._value_deserializer is not None:
        raise ValueError("recovering unparseable records needs a consumer without deserializers")
    owned: dict[TopicPartition, int] = {}
    paused = consumer.paused()  # not fetched, so neither drained nor met the bad batch
    for tp in sorted(consumer.assignment() - paused):
        try:
            offset = expected[tp] if tp in expected else await _start_without_position(consumer, tp)
            consumer.seek(tp, offset)
        except IllegalStateError:  # revoked meanwhile: no longer this consumer's to read
            continue
        owned[tp] = offset
    recovery = Recovery(positions=dict(owned))
    for tp, offset in owned.items():
        await _recover_partition(consumer, tp, offset, fetcher._check_crcs, recovery)
    if not recovery.records and not recovery.unparseable:
        raise RuntimeError(
            "a fetch could not be parsed, but no partition holds a batch that cannot be "
            f"parsed at the expected offsets {_offsets(owned)}"
        )
    return recovery


async def _recover_partition(
    consumer: Any, tp: TopicPartition, expected: int, check_crcs: bool, recovery: Recovery
) -> None:
    found = examine(tp, await fetch_raw(consumer, tp, expected), expected, check_crcs)
    if found is None:
        return
    for part in found.unparseable:
        _log.error("skipping: %s", part.describe())
    if found.records:
        recovery.records[tp] = found.records
    recovery.unparseable.extend(found.unparseable)
    consumer.seek(tp, found.resume_at)
    recovery.positions[tp] = found.resume_at


@dataclass(frozen=True, slots=True)
class BadBatch:
    """What `examine` found in a partition's bytes."""

    records: list[ConsumerRecord[bytes, bytes]]
    """The records from the fetch offset to the end of the last bad batch that can be read."""
    unparseable: list[Unparseable]
    resume_at: int
    """The offset after the last bad batch: above the fetch offset."""


def examine(tp: TopicPartition, data: bytes, expected: int, check_crcs: bool) -> BadBatch | None:
    """Find in `data` (fetched from offset `expected`) the batches that aiokafka's parser
    refuses; None when it reads them all. Otherwise the readable records up to the end
    of the last such batch, and the position after it (the records after it are left to
    aiokafka). A bad batch whose end cannot be told stops the search there. Raises
    UnsupportedCodecError when a batch needs a codec library that is not installed (a
    setup error, not a bad record)."""
    batches, broken_tail = split_batches(data)
    found: BadBatch | None = None
    pending: list[ConsumerRecord[bytes, bytes]] = []
    position = expected
    for raw in batches:
        try:
            records, after = _aiokafka_records(tp, raw, position, check_crcs)
        except UnsupportedCodecError:
            raise
        except Exception:  # whatever aiokafka's parser raises: this batch is a bad one
            parsed = parse_batch(raw, check_crc=check_crcs)
            ends_above = parsed.next_offset > position
            found = _bad_batch(tp, position, found, pending, _within_reach(parsed, raw, position))
            if not ends_above:
                return found
            pending, position = [], found.resume_at
            continue
        pending.extend(records)
        position = max(position, after)
    if broken_tail:
        return _bad_batch(tp, position, found, pending, _broken_frame(broken_tail, position))
    return found


async def _start_without_position(consumer: Any, tp: TopicPartition) -> int:
    """Where a partition that had no position before the fetch started: nothing of it was
    handed over since, so its committed offset, or else (no commit) where aiokafka's
    reset put it, which is its position unless the failed fetch drained records of it."""
    try:
        committed: int | None = await consumer.committed(tp)
    except IllegalOperation:  # no group: nothing is ever committed
        committed = None
    if committed is not None:
        return committed
    position: int = await consumer.position(tp)
    _log.warning(
        "%s[%d] had neither a position before the fetch nor a committed offset: "
        "recovering from its position %d",
        tp.topic,
        tp.partition,
        position,
    )
    return position


def _aiokafka_records(
    tp: TopicPartition, raw: bytes, expected: int, check_crcs: bool
) -> tuple[list[ConsumerRecord[bytes, bytes]], int]:
    """The batch's records at or above `expected`, parsed as the fetcher parses them, and
    the offset after the batch."""
    batch = MemoryRecords(raw).next_batch()
    if batch is None:
        raise CorruptRecordException("no batch in the bytes")
    if check_crcs and not batch.validate_crc():
        raise CorruptRecordException("invalid CRC")
    if batch.is_control_batch:
        return [], batch.next_offset
    return [
        ConsumerRecord(
            tp.topic,
            tp.partition,
            record.offset,
            record.timestamp,
            record.timestamp_type,
            record.key,
            record.value,
            record.checksum,
            len(record.key) if record.key is not None else -1,
            len(record.value) if record.value is not None else -1,
            tuple(record.headers),
        )
        for record in batch
        if record.offset >= expected
    ], batch.next_offset


def _within_reach(parsed: ParsedBatch, raw: bytes, expected: int) -> ParsedBatch:
    """`parsed` when it ends above `expected`. A broker answers a fetch with batches that
    end at or above the fetch offset, so a bad batch whose own header says it ends below
    (a damaged magic byte or offset field, which the CRC does not cover) cannot say
    where it ends: then exactly `expected` is skipped, as for a broken frame."""
    if parsed.next_offset > expected:
        return parsed
    reason = f"the batch's header places it below the fetch offset, at {parsed.base_offset}"
    return ParsedBatch(
        expected, expected + 1, False, (), (Unframeable(expected, expected, reason, raw),)
    )


def _broken_frame(raw: bytes, offset: int) -> ParsedBatch:
    """Bytes after the last whole batch (which ended before `offset`) whose length cannot
    be a batch's: nothing says where they end, so exactly `offset` is skipped (the next
    recovery, if any, skips the one after: always forward, never past what might be
    readable)."""
    reason = "a batch length below any batch's minimum"
    return ParsedBatch(offset, offset + 1, False, (), (Unframeable(offset, offset, reason, raw),))


def _bad_batch(
    tp: TopicPartition,
    position: int,
    found: BadBatch | None,
    readable: list[ConsumerRecord[bytes, bytes]],
    parsed: ParsedBatch,
) -> BadBatch:
    """`found` so far, then the records read since (`readable`), the bad batch's readable
    records and unreadable parts at or above `position`, and the offset after it."""
    records = [*(found.records if found else ()), *readable]
    for record in parsed.records:
        if record.offset >= position:
            _warn_undecodable_keys(tp, record)
            records.append(_consumer_record(tp, record))
    unparseable = [*(found.unparseable if found else ())]
    unparseable += [
        Unparseable(
            tp.topic,
            tp.partition,
            max(part.first_offset, position),
            part.last_offset,
            part.reason,
            part.raw,
        )
        for part in parsed.unframeable
        if part.last_offset >= position
    ]
    return BadBatch(records, unparseable, parsed.next_offset)


def _warn_undecodable_keys(tp: TopicPartition, record: ParsedRecord) -> None:
    for key in record.undecodable_header_keys:
        _log.warning(
            "%s[%d] offset %d: header key %s is not UTF-8; handed over with U+FFFD",
            tp.topic,
            tp.partition,
            record.offset,
            key[:_KEY_BYTES_LOGGED].hex() + ("…" if len(key) > _KEY_BYTES_LOGGED else ""),
        )


def _consumer_record(tp: TopicPartition, record: ParsedRecord) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        tp.topic,
        tp.partition,
        record.offset,
        record.timestamp,
        record.timestamp_type,
        record.key,
        record.value,
        None,
        len(record.key) if record.key is not None else -1,
        len(record.value) if record.value is not None else -1,
        record.headers,  # a header value may be None, as in aiokafka's own records
    )


def _offsets(positions: Mapping[TopicPartition, int]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]={offset}" for tp, offset in positions.items())
