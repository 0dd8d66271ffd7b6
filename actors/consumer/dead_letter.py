"""Dead-letter records: the original bytes plus headers that say where and why they failed.

A record that can never succeed (its failure is PERMANENT) goes to the dead-letter topic
with its original key, value and headers, plus:

    dlq.source.topic, dlq.source.partition, dlq.source.offset   where it came from
    dlq.error.class, dlq.error.category                         what failed
    dlq.error.message   the error text, secrets masked, truncated to MAX_MESSAGE_BYTES
    dlq.failed.at       when, ISO 8601 UTC

A record replayed from a dead-letter topic may carry dlq.* headers already; they are
replaced, not repeated, so the headers always describe the latest failure.

The writer awaits the broker's acknowledgement (acks=all) before returning, so the
consumer commits the offset behind a dead-lettered record only once it is safely stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka import AIOKafkaProducer

from actors.messages import Record
from core.logging.masking import mask_text
from core.types import ErrorCategory

__all__ = ["DLQ_HEADER_PREFIX", "MAX_MESSAGE_BYTES", "DeadLetterWriter", "dead_letter_headers"]

DLQ_HEADER_PREFIX: Final = "dlq."
MAX_MESSAGE_BYTES: Final = 1024
_ELLIPSIS: Final = "…"


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
        "error.message": _safe_message(error),
        "error.category": category.value,
        "failed.at": failed_at.astimezone(UTC).isoformat(timespec="milliseconds"),
    }
    return own + [(DLQ_HEADER_PREFIX + name, text.encode()) for name, text in failure.items()]


def _safe_message(error: BaseException) -> str:
    text = mask_text(str(error)) or type(error).__name__
    encoded = text.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return text
    room = MAX_MESSAGE_BYTES - len(_ELLIPSIS.encode())
    return encoded[:room].decode("utf-8", errors="ignore") + _ELLIPSIS


class DeadLetterWriter:
    """A producer that stores dead-letter records and waits until the broker has them."""

    def __init__(self, producer_kwargs: Mapping[str, Any]) -> None:
        self._producer = AIOKafkaProducer(**producer_kwargs)

    async def start(self) -> None:
        """Connect to the cluster."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def write(
        self, topic: str, record: Record, error: BaseException, category: ErrorCategory
    ) -> None:
        """Store `record` on `topic` with the failure headers; returns once acknowledged."""
        headers = dead_letter_headers(record, error, category, datetime.now(UTC))
        delivery = await self._producer.send(topic, record.value, key=record.key, headers=headers)
        await delivery
