"""How a failed download is classified: every failure is a `DownloadError` with a category.

| what happened                                  | category  |
|------------------------------------------------|-----------|
| 404, 410, 403, 401 (no credentials would help)  | PERMANENT |
| other 4xx except 408 and 429                   | PERMANENT |
| 429, 503 (Retry-After honoured), 408, other 5xx | TRANSIENT |
| a redirect without Location, too many redirects | PERMANENT |
| a status that is neither 200 nor a redirect    | PERMANENT |
| body larger than the cap, content type refused | PERMANENT |
| connect/read/total timeout, connection errors  | TRANSIENT |
| a refused URL (any hop)                        | PERMANENT (UrlRefusedError) |

403 is PERMANENT here although `classify_http_status` says AUTH: a download sends no
credentials, so refreshing a token cannot help. `Retry-After` is read as seconds or
as an HTTP date, and capped at `max_retry_after_s` so a hostile server cannot park the
pipeline for days; a missing or unreadable one leaves the retry policy's backoff.
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Final

from core.errors import DownloadError
from core.types import ErrorCategory

__all__ = ["error_for_status", "parse_retry_after"]

_PERMANENT_STATUSES: Final = frozenset({401, 403, 404, 410})


def parse_retry_after(value: str | None, *, cap: float, now: float | None = None) -> float | None:
    """Seconds to wait that `Retry-After: value` asks for, at most `cap`; None if unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), cap)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT; a bare one is read as such
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)


def error_for_status(status: int, url: str, *, retry_after: float | None = None) -> DownloadError:
    """The DownloadError a non-200, non-redirect answer becomes (see the module table)."""
    if status in _PERMANENT_STATUSES:
        category = ErrorCategory.PERMANENT
    elif status in (408, 429) or 500 <= status <= 599:
        category = ErrorCategory.TRANSIENT
    else:
        category = ErrorCategory.PERMANENT
    waiting = f"; retry after {retry_after:.0f}s" if retry_after is not None else ""
    return DownloadError(
        f"download of {url} answered HTTP {status}{waiting}",
        status_code=status,
        category=category,
        retry_after=retry_after if category is ErrorCategory.TRANSIENT else None,
        context={"url": url},
    )
