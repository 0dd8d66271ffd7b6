"""Dead-letter headers carry the original headers and a safe description of the failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.dead_letter import MAX_MESSAGE_BYTES, dead_letter_headers
from actors.messages import Record
from core.errors import PermanentError
from core.types import ErrorCategory

FAILED_AT = datetime(2026, 5, 4, 3, 2, 1, 123000, tzinfo=UTC)


def record(headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    """A record from partition 2 at offset 41 of topic `orders`."""
    return Record("orders", 2, 41, b"k", b"v", headers, 1_700_000_000_000)


def as_dict(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    """The dlq.* headers as text."""
    return {k: v.decode() for k, v in headers if k.startswith("dlq.")}


def test_failure_headers_name_source_error_and_time() -> None:
    """Every dlq.* header is present with the source coordinates, the error and the time."""
    headers = dead_letter_headers(
        record(), PermanentError("bad amount"), ErrorCategory.PERMANENT, FAILED_AT
    )
    assert as_dict(headers) == {
        "dlq.source.topic": "orders",
        "dlq.source.partition": "2",
        "dlq.source.offset": "41",
        "dlq.error.class": "core.errors.exceptions.PermanentError",
        "dlq.error.message": "bad amount",
        "dlq.error.category": "permanent",
        "dlq.failed.at": "2026-05-04T03:02:01.123+00:00",
    }


def test_original_headers_come_first_and_old_failure_headers_are_replaced() -> None:
    """The record's own headers are kept in order; dlq.* headers of an earlier failure go."""
    original = (("trace_id", b"t1"), ("dlq.error.message", b"old"), ("h", b"\x00\xff"))
    headers = dead_letter_headers(
        record(original), ValueError("x"), ErrorCategory.PERMANENT, FAILED_AT
    )
    assert headers[:2] == [("trace_id", b"t1"), ("h", b"\x00\xff")]
    assert [v for k, v in headers if k == "dlq.error.message"] == [b"x"]


def test_failure_time_is_rendered_in_utc() -> None:
    """A time given in another zone is written as UTC."""
    local = FAILED_AT.astimezone(timezone(timedelta(hours=2)))
    headers = dead_letter_headers(record(), ValueError("x"), ErrorCategory.PERMANENT, local)
    assert as_dict(headers)["dlq.failed.at"] == "2026-05-04T03:02:01.123+00:00"


def test_secrets_in_the_error_message_are_masked() -> None:
    """Passwords, SAS signatures and bearer tokens in the error text never reach the topic."""
    error = ValueError("POST ?sig=abc123 failed; password=hunter2; Bearer eyJhbGciOiJIUzI1NiJ9")
    message = as_dict(dead_letter_headers(record(), error, ErrorCategory.PERMANENT, FAILED_AT))[
        "dlq.error.message"
    ]
    for secret in ("abc123", "hunter2", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in message


@given(st.text(min_size=1, max_size=3000))
def test_error_message_is_truncated_to_the_limit(text: str) -> None:
    """Whatever the error text, its header is valid UTF-8 of at most MAX_MESSAGE_BYTES."""
    headers = dead_letter_headers(
        record(), PermanentError(text), ErrorCategory.PERMANENT, FAILED_AT
    )
    raw = next(v for k, v in headers if k == "dlq.error.message")
    assert len(raw) <= MAX_MESSAGE_BYTES
    raw.decode("utf-8")


def test_naive_failure_time_is_refused() -> None:
    """A failure time without a zone would be ambiguous, so it is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        dead_letter_headers(
            record(), ValueError("x"), ErrorCategory.PERMANENT, datetime(2026, 1, 1)
        )
