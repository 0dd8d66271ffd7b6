"""The error a refused URL raises, and the rules it can name.

A refused URL can never be fetched however often it is retried, so `UrlRefusedError`
is PERMANENT (the record goes to the dead-letter topic). It is also a `DownloadError`,
so code that handles download failures sees refusals too. Its message and its
`rule` name the rule that refused it; the URL itself goes into the log context only
without its query string (queries may carry signed tokens).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from core.errors.exceptions import DownloadError, PermanentError
from core.types import ErrorCategory

__all__ = ["RefusalRule", "UrlRefusedError"]


class RefusalRule(enum.StrEnum):
    """Why a URL, host or address was refused; the value is what logs and dead letters show."""

    MALFORMED = "malformed"
    """The URL cannot be parsed unambiguously (control characters, backslashes, bad port...)."""

    URL_TOO_LONG = "url_too_long"
    """The URL is longer than the policy's maximum."""

    SCHEME = "scheme"
    """The scheme is not https."""

    USERINFO = "userinfo"
    """The URL carries a user name or password (`https://user:pass@host/`)."""

    PORT = "port"
    """The port is not among the allowed ports."""

    NUMERIC_HOST = "numeric_host"
    """The host is an IPv4 address in a non-canonical form (decimal, octal, hex, short)."""

    INVALID_HOST = "invalid_host"
    """The host is not a valid DNS name (IDNA) nor an IP address."""

    HOST_NOT_ALLOWED = "host_not_allowed"
    """The host is neither an allowed host nor under an allowed domain suffix."""

    FORBIDDEN_ADDRESS = "forbidden_address"
    """The host is, or resolves to, an address in a forbidden range."""

    NO_ADDRESS = "no_address"
    """The host resolved to no usable address."""


class UrlRefusedError(DownloadError, PermanentError):
    """The URL policy refused a URL; `rule` says which rule, the message says why."""

    def __init__(
        self,
        rule: RefusalRule,
        reason: str,
        *,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            f"URL refused ({rule.value}): {reason}",
            category=ErrorCategory.PERMANENT,
            context={"rule": rule.value, **(context or {})},
        )
        self.rule = rule
