"""The tolerant batch parser and the search for the batch aiokafka cannot parse: they agree
with aiokafka on well-formed batches, read past non-UTF-8 header keys and broken records,
and never fail, loop or go backwards on any bytes."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import UnsupportedCodecError
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from hypothesis import given, settings
from hypothesis import strategies as st
from raw_batches import RawRecord, batch_bytes

from actors.consumer.tolerant_batches import LOG_OVERHEAD, ParsedBatch, parse_batch, split_batches
from actors.consumer.unparseable import examine

optional_bytes = st.none() | st.binary(max_size=40)
headers_strategy = st.lists(st.tuples(st.text(max_size=12), optional_bytes), max_size=4)
records_strategy = st.lists(
    st.tuples(optional_bytes, optional_bytes, headers_strategy, st.integers(0, 10**6)),
    min_size=1,
    max_size=12,
)


def aiokafka_batch(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    compression: int,
    base_offset: int,
) -> bytes:
    """A batch written by aiokafka's own builder, placed at `base_offset` as a broker would."""
    builder = DefaultRecordBatchBuilder(2, compression, 0, -1, -1, -1, 10**7)
    for delta, (key, value, headers, timestamp) in enumerate(records):
        builder.append(delta, timestamp=timestamp, key=key, value=value, headers=headers)
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)
    return bytes(raw)


@settings(max_examples=200, deadline=None)
@given(
    records=records_strategy,
    compression=st.sampled_from([0, 1]),
    base_offset=st.integers(0, 2**40),
)
def test_well_formed_batches_read_as_aiokafka_reads_them(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    compression: int,
    base_offset: int,
) -> None:
    """For any batch aiokafka's builder writes (uncompressed or gzip), every record comes
    out with the offset, timestamp, key, value and headers aiokafka's parser reads."""
    raw = aiokafka_batch(records, compression, base_offset)
    parsed = parse_batch(raw)
    expected = list(DefaultRecordBatch(raw))
    assert parsed.unframeable == ()
    assert parsed.next_offset == base_offset + len(records)
    assert [
        (r.offset, r.timestamp, r.timestamp_type, r.key, r.value, list(r.headers))
        for r in parsed.records
    ] == [(r.offset, r.timestamp, r.timestamp_type, r.key, r.value, r.headers) for r in expected]


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.lists(st.binary(max_size=8), max_size=3), min_size=1, max_size=8),
)
def test_header_keys_that_are_not_utf8_are_read_with_replacement(
    keys: list[list[bytes]],
) -> None:
    """Every record is read whatever its header key bytes; a key that is not UTF-8 reads
    as its U+FFFD-replaced text and its raw bytes are reported, a UTF-8 key is exact."""
    raw = batch_bytes(
        [RawRecord(b"v%d" % n, headers=[(k, b"h") for k in ks]) for n, ks in enumerate(keys)]
    )
    parsed = parse_batch(raw)
    assert parsed.unframeable == ()
    assert [r.value for r in parsed.records] == [b"v%d" % n for n in range(len(keys))]
    for record, record_keys in zip(parsed.records, keys, strict=True):
        assert [name for name, _ in record.headers] == [
            k.decode("utf-8", errors="replace") for k in record_keys
        ]
        assert list(record.undecodable_header_keys) == [k for k in record_keys if not _utf8(k)]


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


broken_records = st.sampled_from(
    [
        RawRecord(b"bad", extra=b"\x00\x01"),  # bytes left over after the headers
        RawRecord(b"bad", body=b"\x00\x00\x00\x02\x00\x01"),  # header count -1
        RawRecord(b"bad", body=b"\x00\x00\x00\x7f"),  # a key longer than the record
        RawRecord(b"bad", body=b"\x00\x00\x00\x00\x00\x80"),  # a varint cut off
    ]
)


@settings(max_examples=100, deadline=None)
@given(before=st.integers(0, 5), after=st.integers(0, 5), broken=broken_records)
def test_a_record_whose_body_does_not_add_up_is_set_aside_alone(
    before: int, after: int, broken: RawRecord
) -> None:
    """A record whose length prefix is sound but whose body is broken becomes one
    Unframeable part with its bytes; the records before and after it are all read."""
    good = [RawRecord(b"g%d" % n) for n in range(before + after)]
    raw = batch_bytes([*good[:before], broken, *good[before:]], base_offset=100)
    parsed = parse_batch(raw)
    assert [r.value for r in parsed.records] == [r.value for r in good]
    assert [r.offset for r in parsed.records] == [
        *range(100, 100 + before),
        *range(101 + before, 101 + before + after),
    ]
    assert len(parsed.unframeable) == 1
    part = parsed.unframeable[0]
    assert part.first_offset >= 100 + before
    assert part.last_offset <= 100 + before + after
    assert part.raw.endswith(broken.body or broken.extra)


@settings(max_examples=100, deadline=None)
@given(before=st.integers(0, 5), after=st.integers(1, 5), length=st.sampled_from([0, -3, 10**6]))
def test_a_length_prefix_that_cannot_hold_sets_aside_the_rest_of_the_batch(
    before: int, after: int, length: int
) -> None:
    """After a record length that is zero, negative or past the batch, nothing says where
    the next record starts: the records before it are read, the rest is one part that
    spans to the batch's last offset."""
    records = [RawRecord(b"g%d" % n) for n in range(before)]
    records += [RawRecord(b"bad", length=length), *(RawRecord(b"a%d" % n) for n in range(after))]
    parsed = parse_batch(batch_bytes(records))
    assert [r.value for r in parsed.records] == [b"g%d" % n for n in range(before)]
    [part] = parsed.unframeable
    assert (part.first_offset, part.last_offset) == (before, before + after)
    assert parsed.next_offset == before + after + 1


def test_a_batch_whose_crc_does_not_match_is_set_aside_whole() -> None:
    """A CRC mismatch makes the whole batch one part (its content cannot be trusted),
    unless CRCs are not checked, as for a consumer with check_crcs off."""
    raw = batch_bytes([RawRecord(b"a"), RawRecord(b"b")], base_offset=7, break_crc=True)
    checked = parse_batch(raw)
    assert checked.records == ()
    assert [(p.first_offset, p.last_offset, p.raw) for p in checked.unframeable] == [(7, 8, raw)]
    assert checked.next_offset == 9
    assert [r.value for r in parse_batch(raw, check_crc=False).records] == [b"a", b"b"]


def _check_invariants(parsed: ParsedBatch) -> None:
    """Offsets only grow, stay inside the batch, and the log continues after it."""
    assert parsed.next_offset > parsed.base_offset
    offsets = [r.offset for r in parsed.records]
    assert offsets == sorted(set(offsets))
    assert all(parsed.base_offset <= o < parsed.next_offset for o in offsets)
    for part in parsed.unframeable:
        assert part.first_offset <= part.last_offset < parsed.next_offset


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_make_it_fail(data: bytes) -> None:
    """Any bytes split into batches and parse without an exception, and what they yield
    keeps the offset invariants; the splitter consumes a prefix of its input."""
    batches, rest = split_batches(data)
    assert b"".join(batches) + rest == data[: sum(map(len, batches)) + len(rest)]
    for raw in [data, *batches]:
        _check_invariants(parse_batch(raw))


@settings(max_examples=500, deadline=None)
@given(
    records=records_strategy,
    compression=st.sampled_from([0, 1]),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
def test_damaged_batches_never_make_it_fail(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    compression: int,
    flips: list[tuple[int, int]],
    cut: int | None,
) -> None:
    """A real batch with bytes flipped or cut off parses without an exception, with or
    without the CRC check, and keeps the offset invariants."""
    raw = bytearray(aiokafka_batch(records, compression, 0))
    for position, mask in flips:
        raw[position % len(raw)] ^= mask
    damaged = bytes(raw[: cut % len(raw)] if cut is not None else raw)
    for check_crc in (True, False):
        _check_invariants(parse_batch(damaged, check_crc=check_crc))


def aiokafka_reads(data: bytes, expected: int) -> tuple[list[int], bool]:
    """The offsets aiokafka's fetcher yields from `data` fetched at `expected` (records
    below it are parsed, then dropped), and whether it raised before the end."""
    offsets: list[int] = []
    records = MemoryRecords(data)
    try:
        while records.has_next():
            batch = records.next_batch()
            assert batch is not None
            if not batch.validate_crc():
                return offsets, True
            if batch.is_control_batch:
                continue
            offsets.extend(r.offset for r in batch if r.offset >= expected)
    except UnsupportedCodecError:
        raise
    except Exception:
        return offsets, True
    return offsets, False


fetches = st.lists(
    st.tuples(
        records_strategy,
        st.sampled_from([0, 1]),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=2),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(batches=fetches, skip=st.integers(0, 5), tail=st.binary(max_size=20))
def test_the_bad_batch_is_found_whenever_aiokafka_fails(
    batches: list[tuple[list[Any], int, list[tuple[int, int]]]], skip: int, tail: bytes
) -> None:
    """For fetched bytes made of real batches, some with bytes flipped, and any tail:
    `examine` finds a bad batch whenever aiokafka's fetcher would raise on them (and
    otherwise only for a batch whose magic byte was damaged); it returns every record
    aiokafka yields before the failure, in order, then the bad batch's readable records;
    everything it returns is at or above the fetch offset and below the offset it resumes
    at, which is above the fetch offset (a recovery always advances)."""
    data = bytearray()
    base = 0
    for records, compression, flips in batches:
        raw = bytearray(aiokafka_batch(records, compression, base))
        for position, mask in flips:
            raw[LOG_OVERHEAD + position % (len(raw) - LOG_OVERHEAD)] ^= mask
        data += raw
        base += len(records)
    data += tail
    expected = min(skip, base - 1)
    tp = TopicPartition("t", 0)
    try:
        aiokafka_offsets, aiokafka_failed = aiokafka_reads(bytes(data), expected)
    except UnsupportedCodecError:
        with pytest.raises(UnsupportedCodecError):
            examine(tp, bytes(data), expected, check_crcs=True)
        return
    found = examine(tp, bytes(data), expected, check_crcs=True)
    if found is None:
        assert not aiokafka_failed
        return
    offsets = [r.offset for r in found.records]
    if aiokafka_failed:
        assert offsets[: len(aiokafka_offsets)] == aiokafka_offsets
    else:  # a damaged magic byte (not under the CRC): aiokafka reads a v0/v1 message
        # across the batch's end, where the batch alone cannot be read
        assert any("message format v" in part.reason for part in found.unparseable)
    assert offsets == sorted(set(offsets))
    assert found.resume_at > expected
    assert all(expected <= o < found.resume_at for o in offsets)
    for part in found.unparseable:
        assert expected <= part.first_offset <= part.last_offset < found.resume_at


def test_every_bad_batch_of_one_fetch_is_taken_in_one_go() -> None:
    """Bad batches with good ones between them cost one recovery: the records up to the end
    of the last bad batch come out in order, what follows it is left to aiokafka."""
    bad_key = [(b"\xff", b"h")]
    data = b"".join(
        [
            batch_bytes([RawRecord(b"a"), RawRecord(b"b", headers=bad_key)], base_offset=10),
            batch_bytes([RawRecord(b"c")], base_offset=12),
            batch_bytes([RawRecord(b"d", headers=bad_key), RawRecord(b"e")], base_offset=13),
            batch_bytes([RawRecord(b"f")], base_offset=15),
        ]
    )
    found = examine(TopicPartition("t", 0), data, 11, check_crcs=True)
    assert found is not None
    assert [(r.offset, r.value) for r in found.records] == [
        (11, b"b"),
        (12, b"c"),
        (13, b"d"),
        (14, b"e"),
    ]
    assert found.unparseable == []
    assert found.resume_at == 15
