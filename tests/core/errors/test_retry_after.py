"""Retry-After: seconds or HTTP dates, from attributes, azure-core and httpx-shaped responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.utils import CaseInsensitiveDict
from hypothesis import given
from hypothesis import strategies as st

from core.errors import (
    MAX_RETRY_AFTER_S,
    ThrottlingError,
    parse_retry_after,
    retry_after_of,
)

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


class _Response:
    """A response as azure-core and httpx expose it (status, reason, case-insensitive headers).

    A stand-in: no HTTP server is needed to test reading a header off an error.
    """

    reason = "Too Many Requests"
    request = None

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = CaseInsensitiveDict(headers)

    def text(self) -> str:
        return ""


class HTTPStatusError(Exception):
    """Shaped like httpx.HTTPStatusError (httpx is not installed here): `.response.headers`."""

    def __init__(self, response: _Response) -> None:
        super().__init__("429 Too Many Requests")
        self.response = response


@given(seconds=st.integers(min_value=0, max_value=10**15))
def test_delta_seconds_parse_exactly_up_to_the_cap(seconds: int) -> None:
    """A number of seconds is that many seconds, never more than the cap."""
    assert parse_retry_after(f" {seconds} ") == min(float(seconds), MAX_RETRY_AFTER_S)


@given(offset=st.integers(min_value=-(10**6), max_value=10**6))
def test_http_dates_parse_as_the_time_until_then_never_negative(offset: int) -> None:
    """An HTTP date becomes the seconds from now until it, 0 when it has passed, capped."""
    header = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert parse_retry_after(header, now=lambda: NOW) == min(max(offset, 0), MAX_RETRY_AFTER_S)


@given(text=st.text())
def test_any_text_parses_to_none_or_a_wait_within_the_cap(text: str) -> None:
    """Garbage never raises; what parses is a wait between 0 and the cap."""
    wait = parse_retry_after(text, now=lambda: NOW)
    assert wait is None or 0.0 <= wait <= MAX_RETRY_AFTER_S


@pytest.mark.parametrize("text", ["", "soon", "-5", "1.5", "NaN"])
def test_values_that_are_neither_seconds_nor_a_date_are_ignored(text: str) -> None:
    """The header is advice: an unreadable one is no advice."""
    assert parse_retry_after(text) is None


def test_azure_http_response_error_retry_after_header_is_read() -> None:
    """azure-core's HttpResponseError carries the response; its Retry-After is the wait."""
    error = HttpResponseError(response=_Response(429, {"Retry-After": "7"}))
    assert retry_after_of(error) == 7.0


def test_azure_millisecond_headers_are_preferred() -> None:
    """Azure's retry-after-ms is more precise than Retry-After, and read first."""
    error = HttpResponseError(
        response=_Response(503, {"retry-after-ms": "1500", "Retry-After": "2"})
    )
    assert retry_after_of(error) == 1.5


def test_an_httpx_shaped_error_and_a_wrapped_one_are_read() -> None:
    """httpx's HTTPStatusError has `.response.headers`; a wrapper is read through __cause__."""
    original = HTTPStatusError(_Response(429, {"retry-after": "3"}))
    assert retry_after_of(original) == 3.0
    wrapper = RuntimeError("downstream failed")
    wrapper.__cause__ = original
    assert retry_after_of(wrapper) == 3.0


def test_a_retry_after_attribute_wins_and_errors_without_one_ask_nothing() -> None:
    """A PipelineError's own retry_after is used; a plain error asks no wait."""
    assert retry_after_of(ThrottlingError("slow down", retry_after=4.0)) == 4.0
    assert retry_after_of(ValueError("x")) is None
