"""Helpers for testing handlers and pipelines against a real broker.

`external_bootstrap()` gives the bootstrap servers of `KAFKA_BOOTSTRAP_SERVERS` when set;
otherwise a test starts an `EmbeddedBroker` (tests/conftest.py does so once per session).
The async helpers create topics explicitly (Tansu would
auto-create them with 4 partitions), produce records and read back what a topic holds
or what a group committed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from supervisor.testing.embedded_broker import EmbeddedBroker

__all__ = [
    "ConsumedRecord",
    "EmbeddedBroker",
    "committed_offsets",
    "create_topics",
    "external_bootstrap",
    "produce",
    "read_topic",
    "unique_name",
]

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """What a topic held at one offset."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def unique_name(prefix: str) -> str:
    """A topic or group name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def external_bootstrap() -> str | None:
    """`KAFKA_BOOTSTRAP_SERVERS` when the user points the tests at their own broker."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    """Create `names` with `partitions` each; existing topics are left alone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in names:
            try:
                await admin.create_topics(
                    [NewTopic(name=name, num_partitions=partitions, replication_factor=1)]
                )
            except TopicAlreadyExistsError:
                continue
    finally:
        await admin.close()


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]]
    | Iterable[tuple[bytes | None, bytes | None, Headers]],
    *,
    partition: int | None = None,
) -> int:
    """Send `(key, value[, headers])` records with acks=all; returns how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent = 0
    try:
        futures = []
        for record in records:
            key, value, *rest = record
            headers = list(rest[0]) if rest else None
            futures.append(
                await producer.send(topic, value, key=key, headers=headers, partition=partition)
            )
            sent += 1
        for future in futures:
            await future
    finally:
        await producer.stop()
    return sent


async def read_topic(
    bootstrap: str, topic: str, *, expected: int, max_wait: float = 20.0
) -> list[ConsumedRecord]:
    """Read a topic from the beginning (no group) until `expected` records or `max_wait` seconds."""
    import anyio

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[ConsumedRecord] = []
    try:
        with anyio.move_on_after(max_wait):
            while len(found) < expected:
                batches = await consumer.getmany(timeout_ms=200)
                for messages in batches.values():
                    found.extend(_to_record(message) for message in messages)
    finally:
        await consumer.stop()
    return found


async def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[int, int | None]:
    """The offsets `group` committed for each partition of `topic` (None: nothing committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        result: dict[int, int | None] = {}
        for partition in range(partitions):
            result[partition] = await consumer.committed(TopicPartition(topic, partition))
        return result
    finally:
        await consumer.stop()


def _to_record(message: Any) -> ConsumedRecord:
    return ConsumedRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple(message.headers or ()),
    )
