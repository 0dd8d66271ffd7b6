"""Dead-letter records: the original bytes plus headers that say where and why they failed.

A record that can never succeed (its failure is PERMANENT) goes to the dead-letter topic
with its original key, value and headers, plus:

    dlq.source.topic, dlq.source.partition, dlq.source.offset   where it came from
    dlq.error.class, dlq.error.category                         what failed
    dlq.error.message   the error text, secrets masked, truncated to MAX_MESSAGE_BYTES
    dlq.failed.at       when, ISO 8601 UTC

The error is rendered by core.logging.error_text: an exception whose `__str__` raises
still gets a message (its repr, or a placeholder naming its type), a message holding
lone surrogates (text decoded with `surrogateescape`) is escaped, so every header is
valid UTF-8, and registered secret values and credential-shaped text are masked.

A record replayed from a dead-letter topic may carry dlq.* headers already; they are
replaced, not repeated, so the headers always describe the latest failure.

A record that was fetched must always be dead-letterable, even one near the size
limits. Two layers see to it:
* the dead-letter producer's `max_request_size` is at least the consumer's
  `max_partition_fetch_bytes` plus `DEAD_LETTER_HEADER_ROOM` (actors.consumer.
  client_config), so the producer itself never refuses a record the consumer fetched
  normally, headers included;
* if the record is refused as too large anyway (the producer's limit, for a record
  above the fetch limit, which Kafka still delivers alone; or the broker's, whose topic
  limit the original fitted but the original plus the dlq.* headers did not), it is
  written again with its value cut at the end so that the whole is no larger than the
  original record (which this cluster accepted) and than the producer's limit, with
        dlq.value.cut      "<kept> of <original> bytes kept"
        dlq.value.sha256   the SHA-256 of the whole original value
  The original stays in its source topic at dlq.source.offset until retention removes
  it, and the digest tells whether a copy found later is that record. A dead-letter
  topic configured with a smaller limit than its source still refuses the cut copy;
  that error is raised, as any other failure to store.

The writer awaits the broker's acknowledgement (acks=all) before returning, so the
consumer commits the offset behind a dead-lettered record only once it is safely stored.
Its `send` is that acknowledged produce alone. The retry tiers produce through the same
producer with `enqueue`, which hands the record over and returns its delivery (a
future) without awaiting it: the commit awaits it instead (actors.consumer.deliveries),
so tier copies are batched rather than sent one request each.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import anyio
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from actors.messages import Record
from core.logging.error_text import error_text
from core.logging.safe_text import utf8_safe
from core.types import ErrorCategory

__all__ = [
    "DLQ_HEADER_PREFIX",
    "MAX_MESSAGE_BYTES",
    "DeadLetterWriter",
    "cut_to_fit",
    "dead_letter_headers",
]

DLQ_HEADER_PREFIX: Final = "dlq."
MAX_MESSAGE_BYTES: Final = 1024
_DEFAULT_MAX_REQUEST_SIZE: Final = 1_048_576
"""aiokafka's default, for a writer built without `max_request_size`."""

Headers = list[tuple[str, bytes | None]]

_log = logging.getLogger(__name__)


def dead_letter_headers(
    record: Record, error: BaseException, category: ErrorCategory, failed_at: datetime
) -> list[tuple[str, bytes]]:
    """The record's own headers (less any old dlq.* ones) followed by the failure headers."""
    if failed_at.tzinfo is None:
        raise ValueError("failed_at must be timezone-aware")
    own = [(k, v) for k, v in record.headers if not k.startswith(DLQ_HEADER_PREFIX)]
    failure = {
        "source.topic": record.topic,
        "source.partition": str(record.partition),
        "source.offset": str(record.offset),
        "error.class": f"{type(error).__module__}.{type(error).__qualname__}",
        "error.message": error_text(error, max_bytes=MAX_MESSAGE_BYTES),
        "error.category": category.value,
        "failed.at": failed_at.astimezone(UTC).isoformat(timespec="milliseconds"),
    }
    return own + [
        (DLQ_HEADER_PREFIX + name, utf8_safe(text).encode()) for name, text in failure.items()
    ]


def cut_to_fit(
    record: Record, headers: Sequence[tuple[str, bytes | None]], max_bytes: int
) -> tuple[bytes | None, Headers]:
    """The value cut at its end, and the headers saying so, for a copy of at most `max_bytes`.

    `max_bytes` is the size aiokafka estimates for one record (key, value, headers); the
    value keeps as much as fits beside the key, `headers` and the two dlq.value.* headers.
    """
    value = record.value or b""
    digest = hashlib.sha256(value).hexdigest()
    kept = len(value)
    while True:
        cut_headers: Headers = [
            *headers,
            (f"{DLQ_HEADER_PREFIX}value.cut", f"{kept} of {len(value)} bytes kept".encode()),
            (f"{DLQ_HEADER_PREFIX}value.sha256", digest.encode()),
        ]
        size = _record_size(record.key, value[:kept], cut_headers)
        if size <= max_bytes or kept == 0:
            return value[:kept], cut_headers
        kept = max(kept - (size - max_bytes), 0)


def _record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> int:
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))
    return size


class DeadLetterWriter:
    """A producer that stores dead-letter records and waits until the broker has them."""

    def __init__(self, producer_kwargs: Mapping[str, Any]) -> None:
        self._producer = AIOKafkaProducer(**producer_kwargs)
        self._max_request_size: int = producer_kwargs.get(
            "max_request_size", _DEFAULT_MAX_REQUEST_SIZE
        )

    async def start(self) -> None:
        """Connect to the cluster."""
        await self._producer.start()

    async def warm_up(self, topics: Sequence[str], within: float) -> None:
        """Fetch the metadata of `topics` now (at most `within` seconds; a topic that does
        not answer is only logged): the first record sent to a topic otherwise waits for
        it, holding its lane, and a retry tier's first records all arrive at once."""
        for topic in topics:
            with anyio.move_on_after(within):
                try:
                    await self._producer.partitions_for(topic)
                except Exception as exc:  # the first send will tell, with its own error
                    _log.warning("no metadata for %s yet: %s: %s", topic, type(exc).__name__, exc)

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def write(
        self, topic: str, record: Record, error: BaseException, category: ErrorCategory
    ) -> None:
        """Store `record` on `topic` with the failure headers; returns once acknowledged.

        A copy refused as too large is written again cut to fit (see the module docstring).
        """
        headers = dead_letter_headers(record, error, category, datetime.now(UTC))
        try:
            await self.send(topic, record.key, record.value, headers)
        except MessageSizeTooLargeError:
            original = _record_size(record.key, record.value, record.headers)
            value, cut_headers = cut_to_fit(record, headers, min(original, self._max_request_size))
            await self.send(topic, record.key, value, cut_headers)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> None:
        """Produce one record to `topic`; returns once the broker acknowledged it."""
        await (await self.enqueue(topic, key, value, headers))

    async def enqueue(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> asyncio.Future[Any]:
        """Hand one record for `topic` to the producer (waiting only while its buffer for
        the target partition is full); returns its delivery, settled once the broker
        acknowledged it or refused it for good."""
        delivery: asyncio.Future[Any] = await self._producer.send(
            topic, value, key=key, headers=list(headers)
        )
        return delivery
