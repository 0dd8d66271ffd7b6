"""Dead-letter headers carry the original headers and a safe description of the failure."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.dead_letter import MAX_MESSAGE_BYTES, cut_to_fit, dead_letter_headers
from actors.messages import Record
from core.errors import PermanentError
from core.logging import forget_secrets, register_secret
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


class UnprintableError(Exception):
    """An exception whose __str__ raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_message_with_lone_surrogates_still_makes_valid_headers() -> None:
    """A bad-input error quoting surrogateescape-decoded text yields UTF-8 headers."""
    text = b"bad \xff\xfe input".decode("utf-8", "surrogateescape")
    headers = dead_letter_headers(record(), ValueError(text), ErrorCategory.PERMANENT, FAILED_AT)
    assert as_dict(headers)["dlq.error.message"] == "bad \\udcff\\udcfe input"


def test_an_exception_whose_str_raises_is_rendered_by_its_repr() -> None:
    """A failing __str__ does not fail the dead-lettering: the repr is the message."""
    headers = dead_letter_headers(
        record(), UnprintableError("x"), ErrorCategory.PERMANENT, FAILED_AT
    )
    assert as_dict(headers)["dlq.error.message"] == "UnprintableError('x')"


def test_registered_secret_values_are_redacted_from_the_error_message() -> None:
    """The configured secrets, registered by value, never reach a dead-letter header."""
    register_secret("pa55-w0rd-xyz")
    try:
        headers = dead_letter_headers(
            record(), ValueError("login pa55-w0rd-xyz refused"), ErrorCategory.PERMANENT, FAILED_AT
        )
    finally:
        forget_secrets()
    assert as_dict(headers)["dlq.error.message"] == "login *** refused"


@given(
    value_size=st.integers(min_value=0, max_value=200_000),
    key=st.none() | st.binary(max_size=50),
    max_bytes=st.integers(min_value=1_000, max_value=250_000),
)
def test_cut_to_fit_keeps_the_longest_prefix_that_fits_and_says_what_was_cut(
    value_size: int, key: bytes | None, max_bytes: int
) -> None:
    """The copy is within the size, keeps a prefix of the value, and names lengths and digest."""
    value = bytes(range(256)) * (value_size // 256) + b"x" * (value_size % 256)
    poison = Record("orders", 0, 7, key, value, (("h", b"1"),), None)
    headers = dead_letter_headers(poison, ValueError("big"), ErrorCategory.PERMANENT, FAILED_AT)
    kept, cut_headers = cut_to_fit(poison, headers, max_bytes)
    assert kept is not None
    assert value.startswith(kept)
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, kept, cut_headers)
    assert size <= max_bytes or kept == b""
    described = {k: v for k, v in cut_headers if k.startswith("dlq.value.")}
    assert described["dlq.value.cut"] == f"{len(kept)} of {len(value)} bytes kept".encode()
    assert described["dlq.value.sha256"] == hashlib.sha256(value).hexdigest().encode()
    if kept != value:  # nearly all that fits is kept (length varints may cost a few bytes)
        bigger = DefaultRecordBatchBuilder.estimate_size_in_bytes(
            key, value[: len(kept) + 16], cut_headers
        )
        assert bigger > max_bytes
