"""The headers a record carries through the retry tiers: where it came from, why it is
here, when it is due.

    retry.attempt            failed handlings so far (1 in the first tier)
    retry.tier               the tier it was sent to (0 for the first)
    retry.due.ms             when it may be handled again, epoch milliseconds
    retry.original.topic, retry.original.partition, retry.original.offset,
    retry.original.timestamp where it was first read (timestamp: empty when unknown)
    retry.error.class        the last failure's exception class
    retry.error.message      its text, secrets masked, truncated (as dead letters have it)
    retry.history            one entry per hop, "<tier>:<epoch ms>:<error class>", ";"-joined

A record held back to keep its key's order (actors.consumer.retry_tiers.keys) did not
fail: its hop keeps its attempt count and last error, and its history entry says
"held" instead of an error class.

Each hop replaces these headers instead of adding to them, so a record that passed
eight tiers carries one set, and `retry.history` is the whole story in one header
(bounded: at most one entry per tier plus the final one). The record's own headers
are kept as they were, in order, before these.

A record in a tier topic without readable retry headers (produced by hand, or by a
version that wrote other ones) is due at once, with its own coordinates as origin and
its tier's position as its attempts: it is handled rather than parked for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from actors.consumer.dead_letter import MAX_MESSAGE_BYTES
from actors.messages import Record
from core.logging.error_text import error_text
from core.logging.safe_text import utf8_safe

__all__ = ["RETRY_HEADER_PREFIX", "RetryState", "read_retry_state", "retry_headers"]

RETRY_HEADER_PREFIX: Final = "retry."
_HISTORY_ENTRY_BYTES: Final = 160


@dataclass(frozen=True, slots=True)
class RetryState:
    """What the retry headers of one record say."""

    attempt: int
    tier: int
    due_ms: int
    origin: tuple[str, int, int]
    original_timestamp: int | None
    history: str


def retry_headers(
    record: Record, error: BaseException | None, *, tier: int, due_ms: int, now_ms: int
) -> tuple[tuple[str, bytes], ...]:
    """`record`'s own headers (less old retry.* ones) and its retry headers for a hop to
    `tier` (or, with the dead-letter topic as the last hop, the tier it would have been);
    `error` None: held back for key order, not failed."""
    own = tuple((k, v) for k, v in record.headers if not k.startswith(RETRY_HEADER_PREFIX))
    if error is None:
        error_class = _header(record.headers, "error.class") or ""
        message = _header(record.headers, "error.message") or ""
        entry = f"{tier}:{now_ms}:held"
    else:
        error_class = f"{type(error).__module__}.{type(error).__qualname__}"
        message = error_text(error, max_bytes=MAX_MESSAGE_BYTES)
        entry = f"{tier}:{now_ms}:{error_class}"[:_HISTORY_ENTRY_BYTES]
    before = _header(record.headers, "history")
    history = f"{before};{entry}" if before else entry
    timestamp = b"" if record.timestamp is None else str(_original_ts(record)).encode()
    # Built in one go (a failing record pays for it in its worker): numbers are ASCII,
    # and only text is made UTF-8-safe.
    return (
        *own,
        ("retry.attempt", str(record.attempt + (error is not None)).encode()),
        ("retry.tier", str(tier).encode()),
        ("retry.due.ms", str(due_ms).encode()),
        ("retry.original.topic", _utf8(record.original_topic)),
        ("retry.original.partition", str(record.original_partition).encode()),
        ("retry.original.offset", str(record.original_offset).encode()),
        ("retry.original.timestamp", timestamp),
        ("retry.error.class", _utf8(error_class)),
        ("retry.error.message", _utf8(message)),
        ("retry.history", _utf8(history)),
    )


def _utf8(text: str) -> bytes:
    """`text` as UTF-8, lone surrogates escaped (core.logging.safe_text)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return utf8_safe(text).encode()


def _original_ts(record: Record) -> int | None:
    """The source record's timestamp: kept from the first hop on."""
    if record.origin is None:
        return record.timestamp
    kept = _header(record.headers, "original.timestamp")
    return int(kept) if kept and kept.isdigit() else record.timestamp


def _header(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    wanted = RETRY_HEADER_PREFIX + name
    for key, value in headers:
        if key == wanted and value is not None:
            return value.decode("utf-8", "replace")
    return None


def read_retry_state(headers: Sequence[tuple[str, bytes | None]]) -> RetryState | None:
    """The retry headers of a tier record; None when they are missing or unreadable."""
    try:
        fields = {
            key[len(RETRY_HEADER_PREFIX) :]: value.decode()
            for key, value in headers
            if key.startswith(RETRY_HEADER_PREFIX) and value is not None
        }
        timestamp = fields.get("original.timestamp", "")
        return RetryState(
            attempt=int(fields["attempt"]),
            tier=int(fields["tier"]),
            due_ms=int(fields["due.ms"]),
            origin=(
                fields["original.topic"],
                int(fields["original.partition"]),
                int(fields["original.offset"]),
            ),
            original_timestamp=int(timestamp) if timestamp else None,
            history=fields.get("history", ""),
        )
    except (KeyError, ValueError):
        return None
