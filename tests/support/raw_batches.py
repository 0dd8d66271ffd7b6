"""Record batches (format v2) built byte by byte, for records no Kafka client would write.

aiokafka's builders only take `str` header keys and always frame records correctly; the
tests need header keys that are not UTF-8 and records whose framing is broken, so this
writes the wire format itself (the layout of Kafka's DefaultRecordBatch/DefaultRecord),
and sends such batches with a raw ProduceRequest through aiokafka's client.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaClient, TopicPartition
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.util import calc_crc32c

RawHeaders = Sequence[tuple[bytes, bytes | None]]


@dataclass(frozen=True)
class RawRecord:
    """One record to write; `body` replaces the encoded body (after the length prefix)."""

    value: bytes | None
    key: bytes | None = None
    headers: RawHeaders = ()
    body: bytes | None = None
    length: int | None = None
    """A length prefix to write instead of the body's true length."""
    extra: bytes = field(default=b"")
    """Bytes appended to the body (counted in the length): bytes left over."""


def varint(value: int) -> bytes:
    """Kafka's zigzag varint."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _sized(data: bytes | None) -> bytes:
    return varint(-1) if data is None else varint(len(data)) + data


def record_body(delta: int, record: RawRecord, timestamp_delta: int = 0) -> bytes:
    """The record's bytes after its length prefix."""
    if record.body is not None:
        return record.body + record.extra
    out = bytearray(b"\x00")
    out += varint(timestamp_delta) + varint(delta) + _sized(record.key) + _sized(record.value)
    out += varint(len(record.headers))
    for name, value in record.headers:
        out += _sized(name) + _sized(value)
    return bytes(out) + record.extra


def batch_bytes(
    records: Sequence[RawRecord],
    *,
    base_offset: int = 0,
    first_timestamp: int = 1_700_000_000_000,
    break_crc: bool = False,
) -> bytes:
    """One uncompressed v2 batch holding `records` at offset deltas 0, 1, 2, ..."""
    payload = bytearray()
    for delta, record in enumerate(records):
        body = record_body(delta, record)
        payload += varint(len(body) if record.length is None else record.length) + body
    after_crc = struct.pack(
        ">hiqqqhii",
        0,  # attributes: no compression, CreateTime
        len(records) - 1,
        first_timestamp,
        first_timestamp,
        -1,
        -1,
        -1,
        len(records),
    )
    after_crc += payload
    crc = calc_crc32c(after_crc) ^ (0xFFFF if break_crc else 0)
    after_length = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


async def produce_raw(bootstrap: str, tp: TopicPartition, batches: Sequence[bytes]) -> None:
    """Append `batches` to `tp`, each in its own ProduceRequest (acks=all), as written."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        client.add_topic(tp.topic)
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(tp)
        for batch in batches:
            request = ProduceRequest(None, -1, 10_000, [(tp.topic, [(tp.partition, batch)])])
            response = await client.send(leader, request)
            for _, partitions in response.topics:
                for partition, error_code, *_ in partitions:
                    assert error_code == 0, f"producing to {tp.topic}[{partition}]: {error_code}"
    finally:
        await client.close()
