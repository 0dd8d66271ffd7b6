"""The vocabulary every layer shares: error categories and the protocols that use them.

Nothing here knows about Kafka, Azure or actors; the categories are what the
supervisor, the retry decorator and the circuit breaker decide on.
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

__all__ = ["ErrorCategory", "ErrorClassifier", "TokenProvider"]


class ErrorCategory(enum.Enum):
    """What a failure says about what to do next."""

    TRANSIENT = "transient"
    """The dependency may recover by itself: retry after a backoff."""

    AUTH = "auth"
    """Credentials were rejected or expired: refresh the token, then retry."""

    PERMANENT = "permanent"
    """Retrying the same input cannot succeed: dead-letter it or escalate."""

    CIRCUIT_OPEN = "circuit_open"
    """A circuit breaker refused the call: wait for its retry-after, do not hammer."""

    UNKNOWN = "unknown"
    """Unrecognised failure: treated like TRANSIENT, but counted, so a loop escalates."""


@runtime_checkable
class ErrorClassifier(Protocol):
    """Maps an exception to a category; domains plug in their own knowledge.

    `core.errors.compose_classifier(yours)` asks yours first and the built-in rules
    where yours answers UNKNOWN (or None, for a plain function); `with_retry` and
    `CircuitBreaker` take the result as `classifier=`.
    """

    def classify(self, exc: BaseException) -> ErrorCategory:
        """Return the category that decides how `exc` is handled."""
        ...


@runtime_checkable
class TokenProvider(Protocol):
    """Anything that can hand out a bearer token for a scope."""

    def get_token(self, scope: str) -> str:
        """Return a currently valid access token for `scope`."""
        ...
