"""The pipeline's exception hierarchy: every error knows its `ErrorCategory`.

Code that raises one of these tells the supervisor, the retry decorator and the
circuit breaker what to do, without any of them knowing where it came from.
`ConnectionError` and `TimeoutError` deliberately share the builtins' names
(the requester's contract); import them qualified (`errors.ConnectionError`).
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from core.types import ErrorCategory

__all__ = [
    "AuthError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConnectionError",
    "DeltaTableError",
    "DomainError",
    "DownloadError",
    "KustoError",
    "OneLakeError",
    "PermanentError",
    "PipelineError",
    "ThrottlingError",
    "TimeoutError",
    "TokenExpiredError",
    "TransientError",
]


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose.

    `retry_after` is the number of seconds the failing side asked us to wait
    (a Retry-After header, a breaker's recovery time); it must be finite and
    >= 0, since it ends up in a sleep. `context` carries structured fields for
    the log event. Neither ever holds a secret.
    """

    default_category: ClassVar[ErrorCategory] = ErrorCategory.UNKNOWN
    _context: dict[str, Any] | None = None

    def __init__(
        self,
        message: str,
        *,
        category: ErrorCategory | None = None,
        retry_after: float | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if retry_after is not None and not (math.isfinite(retry_after) and retry_after >= 0):
            raise builtins.ValueError(
                f"retry_after must be a finite number of seconds >= 0, got {retry_after!r}"
            )
        self._message = message
        self.category: ErrorCategory = category or self.default_category
        self.retry_after = retry_after
        self._context = dict(context) if context else None

    @property
    def message(self) -> str:
        """The one-line description; never holds a secret."""
        return self._message

    @property
    def context(self) -> dict[str, Any]:
        """Structured fields for the log event (built on first use: most errors never log)."""
        if self._context is None:
            self._context = {}
        return self._context

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, category={self.category.name})"


class AuthError(PipelineError):
    """Credentials are missing, rejected or expired."""

    default_category = ErrorCategory.AUTH


class TokenExpiredError(AuthError):
    """A token was used after its expiry; a refresh fixes it."""


class TransientError(PipelineError):
    """A dependency is temporarily unavailable."""

    default_category = ErrorCategory.TRANSIENT


class ConnectionError(TransientError):
    """A network connection could not be made or was lost."""


class TimeoutError(TransientError):
    """An operation did not finish in time."""


class ThrottlingError(TransientError):
    """The dependency asked us to slow down (HTTP 429, Event Hubs quota)."""


class PermanentError(PipelineError):
    """Retrying the same input cannot succeed."""

    default_category = ErrorCategory.PERMANENT


class ConfigurationError(PermanentError):
    """The configuration or environment is wrong; a person has to fix it."""


class CircuitOpenError(PipelineError):
    """A circuit breaker refused the call; `retry_after` says when it will try again.

    Two spellings: `CircuitOpenError(breaker_name, retry_after)`, what a breaker
    raises, and `CircuitOpenError("message")` (optionally `retry_after=`), the
    message-first spelling every other PipelineError takes. Without a wait, the
    first argument is the message, `breaker_name` is "" and `retry_after` is 0.
    A negative or non-finite wait (the recovery time already passed while
    computing it) becomes 0. Built on every rejection of an open breaker, so
    construction is kept to slot stores (no instance-dict writes) and skips the
    base class's validation; the message is formatted only when asked.
    """

    __slots__ = ("_extra_context", "_text", "breaker_name", "retry_after")

    default_category = ErrorCategory.CIRCUIT_OPEN

    category = ErrorCategory.CIRCUIT_OPEN

    def __init__(
        self,
        breaker_name: str,
        retry_after: float | None = None,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        if retry_after is None:  # the message-first spelling
            self._text: str | None = breaker_name
            breaker_name, wait = "", 0.0
        else:
            self._text = None
            wait = retry_after if 0.0 < retry_after < math.inf else 0.0
        self.args = (breaker_name, wait) if self._text is None else (self._text,)
        self.breaker_name = breaker_name
        self.retry_after = wait
        self._extra_context = context

    @property
    def message(self) -> str:
        if self._text is not None:
            return self._text
        return f"circuit {self.breaker_name!r} is open; retry in {self.retry_after:.3f}s"

    @property
    def context(self) -> dict[str, Any]:
        if self._context is None:
            self._context = {"breaker": self.breaker_name, **(self._extra_context or {})}
        return self._context

    def __reduce__(self) -> tuple[Any, ...]:
        """Rebuild from the constructor's arguments, so the error can be copied and pickled."""
        first = self.breaker_name if self._text is None else self._text
        wait = self.retry_after if self._text is None else None
        arguments = (type(self), first, wait, self._extra_context)
        return (_rebuild_circuit_open, arguments, self.__dict__)


def _rebuild_circuit_open(
    cls: type[CircuitOpenError],
    breaker_name: str,
    retry_after: float | None,
    context: Mapping[str, Any] | None,
) -> CircuitOpenError:
    return cls(breaker_name, retry_after, context=context)


class DomainError(PipelineError):
    """An error from an external system whose category follows its HTTP status.

    Pass `status_code=` (classified by `classify_http_status`) or an explicit
    `category=`; with neither the category is UNKNOWN.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        category: ErrorCategory | None = None,
        retry_after: float | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        from core.errors.classification import classify_http_status

        if category is None and status_code is not None:
            category = classify_http_status(status_code)
        merged = dict(context or {})
        if status_code is not None:
            merged["status_code"] = status_code
        super().__init__(message, category=category, retry_after=retry_after, context=merged)
        self.status_code = status_code


class KustoError(DomainError):
    """Azure Data Explorer (Kusto) refused or failed a request."""


class DeltaTableError(DomainError):
    """A Delta table read or write failed."""


class OneLakeError(DomainError):
    """OneLake storage refused or failed a request."""


class DownloadError(DomainError):
    """Downloading a referenced object failed."""
