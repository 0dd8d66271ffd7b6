"""How long the failing side asked us to wait: `retry_after` attributes and HTTP headers.

A dependency that sheds load says when to come back: a PipelineError's `retry_after`,
or the HTTP `Retry-After` header of the response an HTTP error carries (RFC 9110: a
number of seconds, or an HTTP date). `retry_after_of` finds it on

* the error's own `retry_after` attribute (a finite number >= 0);
* `error.response.headers`, read by duck typing so no HTTP library is imported:
  azure-core's HttpResponseError and httpx's HTTPStatusError both carry the response,
  whose headers are a case-insensitive mapping. Azure services also send the wait in
  milliseconds (`retry-after-ms`, `x-ms-retry-after-ms`); those are read first, as
  azure-core's own retry policy does;
* the explicit `__cause__` chain, for an error wrapped with `raise ... from`.

Decisions: a value that cannot be read (garbage, a negative number, NaN) is ignored,
never an error: the header is advice. A date in the past means "now" (0). Any wait is
capped at `MAX_RETRY_AFTER_S` (one hour): a header asking for a year would otherwise
park a worker for a year; a backoff then continues from there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["MAX_RETRY_AFTER_S", "parse_retry_after", "retry_after_of"]

MAX_RETRY_AFTER_S: Final = 3600.0
"""The longest wait a dependency can ask for and get."""

_MILLISECOND_HEADERS: Final = ("retry-after-ms", "x-ms-retry-after-ms")
_MAX_CAUSE_DEPTH: Final = 8
_NUMBER: Final = (int, float)


def parse_retry_after(value: str, now: Callable[[], datetime] | None = None) -> float | None:
    """Seconds to wait for a `Retry-After` value (seconds or an HTTP date); None if unusable."""
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return min(float(int(text[:12])), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is taken as such
        when = when.replace(tzinfo=UTC)
    current = now() if now is not None else datetime.now(UTC)
    return min(max((when - current).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


def retry_after_of(error: BaseException) -> float | None:
    """The wait `error` (or an error it wraps) asks for, in seconds; None if it asks none."""
    current: BaseException | None = error
    for _ in range(_MAX_CAUSE_DEPTH):
        if current is None:
            return None
        wait = _own_retry_after(current)
        if wait is not None:
            return wait
        current = current.__cause__
    return None


def _own_retry_after(error: BaseException) -> float | None:
    attribute = getattr(error, "retry_after", None)
    if (
        isinstance(attribute, _NUMBER)
        and not isinstance(attribute, bool)
        and 0 <= attribute < math.inf
    ):
        return min(float(attribute), MAX_RETRY_AFTER_S)
    headers = getattr(getattr(error, "response", None), "headers", None)
    get = getattr(headers, "get", None)
    if get is None:
        return None
    try:
        for name in _MILLISECOND_HEADERS:
            millis = get(name)
            if isinstance(millis, str):
                seconds = _milliseconds(millis)
                if seconds is not None:
                    return seconds
        value = get("retry-after")
        if value is None:
            value = get("Retry-After")  # a plain dict of headers is case-sensitive
    except Exception:  # headers of a foreign shape: the advice is lost, not the error
        return None
    return parse_retry_after(value) if isinstance(value, str) else None


def _milliseconds(text: str) -> float | None:
    try:
        millis = float(text.strip())
    except ValueError:
        return None
    if not 0 <= millis < math.inf:
        return None
    return min(millis / 1000.0, MAX_RETRY_AFTER_S)
