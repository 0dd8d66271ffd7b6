"""Reading Kafka record batches (format v2) from raw bytes without giving up on bad parts.

aiokafka parses a fetched batch as one unit: a single record it cannot read (a header
key that is not UTF-8, a length that does not add up, a batch whose CRC is wrong) makes
the whole fetch raise, and nothing of that batch reaches the caller. This parser reads
the same bytes record by record, so the consumer can hand over every record that can be
read and set aside, with its raw bytes, only what cannot:

- A header key that is not UTF-8 is decoded with U+FFFD for the bad bytes, as Apache
  Kafka's Java client does (it builds header keys with `new String(bytes, UTF_8)`); the
  record is well framed and is handed over. The key's original bytes are kept in
  `ParsedRecord.undecodable_header_keys` so the caller can log them.
- A record whose length prefix can be read but whose body does not add up (a length
  that runs past the body, a negative header count, bytes left over, an offset outside
  the batch or not after the previous record) is `Unframeable`; the records after it
  are still read, since the length prefix says where the next one starts.
- A length prefix that cannot be read, or that runs past the batch, makes the rest of
  the batch one `Unframeable` part: nothing says where the next record would start.
- A batch whose CRC does not match (when checked), that cannot be decompressed, or that
  is not format v2 is `Unframeable` as a whole: its content cannot be trusted or read.

Offsets of what is set aside are as exact as the bytes allow: a record whose offset
delta was read names its offset; otherwise the part spans from the offset after the last
record read to the batch's last offset (the header's last offset delta), so whoever
skips it never skips past the batch.

Nothing here raises on any input, and every loop advances by at least one byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiokafka import codec
from aiokafka.record.util import calc_crc32c

__all__ = [
    "LOG_OVERHEAD",
    "ParsedBatch",
    "ParsedRecord",
    "Unframeable",
    "parse_batch",
    "split_batches",
]

LOG_OVERHEAD: Final = 12
"""Base offset (int64) and length (int32): what precedes every batch's counted bytes."""

_HEADER: Final = struct.Struct(">qiibIhiqqqhii")
"""Base offset, length, partition leader epoch, magic, CRC, attributes, last offset delta,
first timestamp, max timestamp, producer id, producer epoch, base sequence, record count."""
_MAGIC_AT: Final = 16
_CRC_AT: Final = 17
_ATTRIBUTES_AT: Final = 21
_MIN_LENGTH: Final = 14
"""The smallest length aiokafka accepts for any batch (a v0 message's overhead)."""

_CODEC_MASK: Final = 0x07
_LOG_APPEND_TIME: Final = 0x08
_CONTROL: Final = 0x20

_DECOMPRESSORS: Final[dict[int, tuple[str, Callable[[], bool], Callable[[bytes], bytes]]]] = {
    1: ("gzip", codec.has_gzip, codec.gzip_decode),
    2: ("snappy", codec.has_snappy, codec.snappy_decode),
    3: ("lz4", codec.has_lz4, codec.lz4_decode),
    4: ("zstd", codec.has_zstd, codec.zstd_decode),
}


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """One record read in full."""

    offset: int
    timestamp: int
    timestamp_type: int
    """0 for CreateTime, 1 for LogAppendTime (as aiokafka's ConsumerRecord has it)."""
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    undecodable_header_keys: tuple[bytes, ...] = ()
    """The raw bytes of header keys that were not UTF-8 (decoded with U+FFFD above)."""


@dataclass(frozen=True, slots=True)
class Unframeable:
    """Bytes that could not be read as records, with the offsets they may hold."""

    first_offset: int
    last_offset: int
    reason: str
    raw: bytes
    """The record's bytes from its length prefix on (decompressed, for a compressed
    batch); the whole batch when the batch itself cannot be read."""


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """What one batch yielded; `next_offset` is where the log continues after it."""

    base_offset: int
    next_offset: int
    is_control: bool
    records: tuple[ParsedRecord, ...] = ()
    unframeable: tuple[Unframeable, ...] = ()


class _MalformedError(Exception):
    """A record body does not add up (internal: becomes an `Unframeable`)."""


def split_batches(data: bytes) -> tuple[list[bytes], bytes]:
    """Cut a fetch response's record bytes into whole batches, as aiokafka does.

    Returns the batches and what follows them when it cannot be a batch (a length below
    any batch's minimum); a batch cut off at the end of `data` is dropped, as the broker
    may end a response mid-batch."""
    batches: list[bytes] = []
    pos = 0
    while len(data) - pos >= LOG_OVERHEAD:
        (length,) = struct.unpack_from(">i", data, pos + 8)
        if length < _MIN_LENGTH:
            return batches, data[pos:]
        end = pos + LOG_OVERHEAD + length
        if end > len(data):
            break
        batches.append(data[pos:end])
        pos = end
    return batches, b""


def parse_batch(raw: bytes, *, check_crc: bool = True) -> ParsedBatch:
    """Every record of the batch `raw` (base offset and length included) that can be read,
    and what cannot (see the module docstring). Never raises."""
    if len(raw) < LOG_OVERHEAD:
        return _whole(raw, 0, 0, f"{len(raw)} bytes are too few for a batch")
    base = struct.unpack_from(">q", raw, 0)[0]
    if len(raw) <= _MAGIC_AT:
        return _whole(raw, base, base, f"{len(raw)} bytes are too few for a batch")
    magic = raw[_MAGIC_AT]
    if magic != 2:  # v0/v1: the offset field holds the (last) offset of the message set
        return _whole(raw, base, base, f"message format v{magic} is not read here")
    if len(raw) < _HEADER.size:
        return _whole(raw, base, base, f"{len(raw)} bytes are too few for a v2 batch header")
    (_, _, _, _, crc, attributes, last_delta, first_ts, max_ts, *_) = _HEADER.unpack_from(raw)
    last = base + max(last_delta, 0)
    if last_delta < 0:
        return _whole(raw, base, base, f"negative last offset delta {last_delta}")
    if check_crc and calc_crc32c(raw[_ATTRIBUTES_AT:]) != crc:
        return _whole(raw, base, last, "the batch's CRC does not match its content")
    if attributes & _CONTROL:
        return ParsedBatch(base, last + 1, is_control=True)
    body = raw[_HEADER.size :]
    compression = attributes & _CODEC_MASK
    if compression:
        try:
            body = _decompress(compression, body)
        except Exception as exc:  # any codec failure: the batch cannot be read
            return _whole(raw, base, last, f"cannot decompress the records: {exc!r}")
    timestamps = (_LOG_APPEND_TIME & attributes, first_ts, max_ts)
    records, unframeable = _read_records(body, base, last, timestamps)
    return ParsedBatch(base, last + 1, False, tuple(records), tuple(unframeable))


def _whole(raw: bytes, first: int, last: int, reason: str) -> ParsedBatch:
    return ParsedBatch(first, last + 1, False, (), (Unframeable(first, last, reason, raw),))


def _decompress(compression: int, body: bytes) -> bytes:
    known = _DECOMPRESSORS.get(compression)
    if known is None:
        raise ValueError(f"unknown compression codec {compression}")
    name, available, decode = known
    if not available():
        raise ValueError(f"the {name} codec library is not installed")
    return decode(body)


def _read_records(
    body: bytes, base: int, last: int, timestamps: tuple[int, int, int]
) -> tuple[list[ParsedRecord], list[Unframeable]]:
    records: list[ParsedRecord] = []
    unframeable: list[Unframeable] = []
    previous = base - 1
    pos = 0
    while pos < len(body):
        start = pos
        try:
            length, pos = _varint(body, pos, len(body))
        except _MalformedError as exc:
            unframeable.append(_rest(body, start, previous, last, f"record length: {exc}"))
            break
        if length <= 0 or pos + length > len(body):
            reason = f"record length {length} does not fit the {len(body) - pos} bytes left"
            unframeable.append(_rest(body, start, previous, last, reason))
            break
        end = pos + length
        offset_read: list[int] = []
        try:
            record = _read_record(body, pos, end, base, timestamps, offset_read)
        except _MalformedError as exc:
            offset = offset_read[0] if offset_read else None
            if offset is not None and previous < offset <= last:
                first_offset = last_offset = offset
                previous = offset
            else:
                first_offset, last_offset = min(previous + 1, last), last
            unframeable.append(Unframeable(first_offset, last_offset, str(exc), body[start:end]))
        else:
            if previous < record.offset <= last:
                records.append(record)
                previous = record.offset
            else:
                reason = f"offset {record.offset} is not within {previous + 1}..{last}"
                unframeable.append(
                    Unframeable(min(previous + 1, last), last, reason, body[start:end])
                )
        pos = end
    return records, unframeable


def _rest(body: bytes, start: int, previous: int, last: int, reason: str) -> Unframeable:
    return Unframeable(min(previous + 1, last), last, reason, body[start:])


def _read_record(
    body: bytes,
    pos: int,
    end: int,
    base: int,
    timestamps: tuple[int, int, int],
    offset_read: list[int],
) -> ParsedRecord:
    """The record in `body[pos:end]`; its offset goes to `offset_read` as soon as it is
    known, so a record that fails later can still be placed."""
    log_append, first_ts, max_ts = timestamps
    pos += 1  # attributes (int8, unused)
    ts_delta, pos = _varint(body, pos, end)
    offset_delta, pos = _varint(body, pos, end)
    offset = base + offset_delta
    offset_read.append(offset)
    key, pos = _bytes(body, pos, end, "key")
    value, pos = _bytes(body, pos, end, "value")
    count, pos = _varint(body, pos, end)
    if count < 0:
        raise _MalformedError(f"negative header count {count}")
    headers: list[tuple[str, bytes | None]] = []
    undecodable: list[bytes] = []
    for _ in range(count):
        raw_key, pos = _bytes(body, pos, end, "header key")
        if raw_key is None:
            raise _MalformedError("a header key is null")
        try:
            name = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            name = raw_key.decode("utf-8", errors="replace")
            undecodable.append(raw_key)
        header_value, pos = _bytes(body, pos, end, "header value")
        headers.append((name, header_value))
    if pos != end:
        raise _MalformedError(f"{end - pos} bytes left over after the headers")
    timestamp = max_ts if log_append else first_ts + ts_delta
    return ParsedRecord(
        offset,
        timestamp,
        1 if log_append else 0,
        key,
        value,
        tuple(headers),
        tuple(undecodable),
    )


def _bytes(body: bytes, pos: int, end: int, what: str) -> tuple[bytes | None, int]:
    """A length-prefixed field; a negative length is null (as aiokafka and Java read it)."""
    length, pos = _varint(body, pos, end)
    if length < 0:
        return None, pos
    if pos + length > end:
        raise _MalformedError(f"{what} length {length} runs past the record")
    return body[pos : pos + length], pos + length


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A zigzag varint (up to 64 bits) from `data[pos:end]`, and the position after it."""
    result = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
    raise _MalformedError("a varint runs past the record" if pos >= end else "a varint is too long")
