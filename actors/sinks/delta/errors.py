"""What a delta-rs failure means for a retry, as a `DeltaTableError` with its category.

delta-rs raises a few exception types and puts the HTTP status of the object store in
the message, so the mapping reads both:

* a commit lost to a concurrent writer (`CommitFailedError`: "Concurrent ...", a
  conflict, or "Metadata changed since last commit"): not mapped; the sink reads the
  table again (schema and recorded offset) and commits again.
* `SchemaMismatchError`, a local "Permission denied", a 403 that is an authorisation
  refusal (AuthorizationPermissionMismatch, "lacked the necessary privileges") and a
  missing container: PERMANENT. No retry can fix them; a person must.
* 401, or a 403 that says authentication failed or a token expired: AUTH (a fresh
  token may fix it; the sink asks for one at its next attempt), but PERMANENT when
  the table is reached with a fixed account key or SAS (nothing to refresh).
* 408, 429, 5xx, timeouts and connection failures: TRANSIENT.
* anything else: UNKNOWN (retried, counted, and escalated if it keeps happening).

Messages are cut to one line-ish and URL query strings are dropped: a SAS token lives
there and must not reach a log.
"""

from __future__ import annotations

import re
from typing import Final

from deltalake.exceptions import CommitFailedError, SchemaMismatchError

from core.errors import DeltaTableError
from core.types import ErrorCategory

__all__ = ["is_commit_conflict", "to_delta_error"]

_STATUS: Final = re.compile(r"\b([45]\d\d) [A-Z][A-Za-z]")
_QUERY: Final = re.compile(r"\?\S*")
_AUTHENTICATION: Final = (
    "authenticationfailed",
    "invalidauthenticationinfo",
    "failed to authenticate",
    "token is expired",
    "expiredtoken",
)
_PERMISSION: Final = (
    "permission denied",
    "authorizationpermissionmismatch",
    "authorizationfailure",
    "lacked the necessary privileges",
)
_NOT_FOUND: Final = ("containernotfound", "filesystemnotfound", "no such container")
_TRANSIENT: Final = (
    "timed out",
    "timeout",
    "error sending request",
    "connection refused",
    "connection reset",
    "serverbusy",
    "throttl",
)
_CONFLICT: Final = ("concurrent", "conflict", "version already exists", "metadata changed")
_MAX_MESSAGE: Final = 600


def is_commit_conflict(exc: BaseException) -> bool:
    """True when a concurrent writer's commit made ours fail (re-read, then try again)."""
    if not isinstance(exc, CommitFailedError):
        return False
    text = str(exc).lower()
    return any(sign in text for sign in _CONFLICT)


def to_delta_error(
    exc: BaseException, table: str, action: str, *, token_in_use: bool = True
) -> DeltaTableError:
    """`exc` from delta-rs while doing `action` on `table`, as a categorised DeltaTableError.

    Without a token (`token_in_use=False`: an account key or SAS in the storage
    options), an authentication failure is PERMANENT: no token refresh can fix it.
    """
    text = _QUERY.sub("?...", " ".join(str(exc).split()))[:_MAX_MESSAGE]
    lowered = text.lower()
    match = _STATUS.search(text)
    status = int(match.group(1)) if match else None
    category = _category(exc, lowered, status)
    if category is ErrorCategory.AUTH and not token_in_use:
        category = ErrorCategory.PERMANENT
    return DeltaTableError(
        f"Delta table {table!r}: {action} failed: {type(exc).__name__}: {text}",
        status_code=status,
        category=category,
        context={"table": table, "action": action},
    )


def _category(exc: BaseException, lowered: str, status: int | None) -> ErrorCategory:
    if isinstance(exc, SchemaMismatchError):
        return ErrorCategory.PERMANENT
    if status == 401 or any(word in lowered for word in _AUTHENTICATION):
        return ErrorCategory.AUTH
    if any(word in lowered for word in _PERMISSION + _NOT_FOUND):
        return ErrorCategory.PERMANENT
    if status is not None and (status in (408, 429) or status >= 500):
        return ErrorCategory.TRANSIENT
    if any(word in lowered for word in _TRANSIENT):
        return ErrorCategory.TRANSIENT
    if status is not None and 400 <= status < 500:
        return ErrorCategory.PERMANENT
    return ErrorCategory.UNKNOWN
