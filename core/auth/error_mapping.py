"""Translate what azure-identity raises into `CredentialError`s that say what to fix.

azure-identity reports almost everything as `ClientAuthenticationError` (its
`wrap_exceptions` even turns a refused connection into one), which
`classify_exception` alone would call AUTH. Here the whole cause chain is read:

* an HTTP status 408/429/5xx from the token endpoint (azure-core's
  `status_code`, or MSAL's "HTTP Error: 503", the only form MSAL reports it in),
  a transport error (`ServiceRequestError`/`ServiceResponseError`), a network
  `OSError`, an `az` process timeout, anywhere in the explicit cause chain
  (`raise ... from`), or the OAuth error codes `temporarily_unavailable` /
  `server_error` (RFC 6749) in the message: TRANSIENT (retry later; refreshing
  won't help). azure-identity drops the status of a 429 from Entra, so a 429
  whose body hides those codes behind a description ends up AUTH (still retried
  by the supervisor, but counted toward its restart intensity);
* "Azure CLI not found on path", a malformed tenant/scope (ValueError): PERMANENT
  (someone must install or configure something);
* anything else, e.g. "Please run 'az login'", AADSTS errors, a rejected secret:
  AUTH.

The original exception stays as `__cause__`. Its message is kept (it carries
AADSTS codes that people search for) with every known secret value redacted.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Iterator

from azure.core import exceptions as azure_errors

from core.auth.errors import CredentialConfigurationError, CredentialError
from core.errors import classify_exception, classify_http_status
from core.logging.safe_text import safe_str, utf8_safe
from core.types import ErrorCategory

__all__ = ["credential_error_from", "redact"]

REDACTED = "***"

_CLI_NOT_FOUND = "Azure CLI not found on path"
_NOT_LOGGED_IN = "Please run 'az login'"
_MAX_CHAIN = 8
_MSAL_HTTP_STATUS = re.compile(r"\bHTTP Error: (\d{3})\b")
_TRANSIENT_OAUTH_ERRORS = re.compile(r"\b(temporarily_unavailable|server_error)\b")
_MAX_DETAIL = 2000


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every non-empty secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def credential_error_from(
    exc: BaseException,
    *,
    method: str,
    scope: str,
    secrets: Iterable[str] = (),
) -> CredentialError:
    """A `CredentialError` for `exc`, raised while `method` asked for a token for `scope`."""
    detail = redact(_message_of(exc), secrets)
    prefix = f"{method} could not get a token for {scope}"
    if safe_str(exc).startswith(_CLI_NOT_FOUND):
        return CredentialConfigurationError(
            f"{prefix}: the Azure CLI (`az`) is not on PATH. Install it, or choose another "
            "method with AZURE_AUTH_METHOD"
        )
    if isinstance(exc, ValueError | TypeError):
        return CredentialConfigurationError(f"{prefix}: {detail}")
    category = _category_of(exc)
    if category is ErrorCategory.TRANSIENT:
        return CredentialError(
            f"{prefix}: the token service is unreachable or failing ({detail}); retry later",
            category=ErrorCategory.TRANSIENT,
        )
    if safe_str(exc).startswith(_NOT_LOGGED_IN):
        return CredentialError(f"{prefix}: the Azure CLI is not logged in: run `az login`")
    return CredentialError(f"{prefix}: {detail}", category=ErrorCategory.AUTH)


def _message_of(exc: BaseException) -> str:
    text = utf8_safe(safe_str(getattr(exc, "message", None) or exc)).strip()
    text = text or type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + " [...]"


def _category_of(exc: BaseException) -> ErrorCategory:
    for link in _cause_chain(exc):
        if _is_transient(link):
            return ErrorCategory.TRANSIENT
    return ErrorCategory.AUTH


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, azure_errors.ServiceRequestError | azure_errors.ServiceResponseError):
        return True
    if isinstance(exc, subprocess.TimeoutExpired):
        return True
    if isinstance(exc, azure_errors.AzureError) and _TRANSIENT_OAUTH_ERRORS.search(safe_str(exc)):
        return True
    status = _http_status(exc)
    if status is not None:
        return classify_http_status(status) is ErrorCategory.TRANSIENT
    if isinstance(exc, azure_errors.AzureError) or type(exc).__module__.startswith("msal"):
        return False
    return classify_exception(exc) is ErrorCategory.TRANSIENT


def _http_status(exc: BaseException) -> int | None:
    if isinstance(exc, azure_errors.HttpResponseError) and isinstance(exc.status_code, int):
        return exc.status_code
    if type(exc).__module__.startswith("msal"):
        match = _MSAL_HTTP_STATUS.search(safe_str(exc))
        return int(match.group(1)) if match else None
    return None


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(link))
        yield link
        link = link.__cause__
