"""credential_error_from: categories and messages for what azure-identity and MSAL raise.

The exceptions are the libraries' real classes, built the way those libraries
build them (azure-core's status_code is set on the instance as its pipeline does).
"""

from __future__ import annotations

import errno
import subprocess

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError
from hypothesis import given, settings
from hypothesis import strategies as st
from msal.exceptions import MsalServiceError

from core.auth.error_mapping import credential_error_from, redact
from core.auth.errors import CredentialConfigurationError, CredentialError
from core.errors import classify_exception
from core.types import ErrorCategory

SCOPE = "https://eventhubs.azure.net/.default"


def mapped(exc: BaseException, secrets: tuple[str, ...] = ()) -> CredentialError:
    return credential_error_from(exc, method="the test method", scope=SCOPE, secrets=secrets)


def wrapped(cause: BaseException, message: str = "Authentication failed") -> BaseException:
    """A ClientAuthenticationError raised from `cause`, as azure-identity's wrap_exceptions does."""
    try:
        raise ClientAuthenticationError(message=f"{message}: {cause}") from cause
    except ClientAuthenticationError as error:
        return error


def with_status(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"status {status}")
    error.status_code = status
    return error


@pytest.mark.parametrize(
    "exc",
    [
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset mid-response"),
        wrapped(ServiceRequestError("Failed to establish a new connection")),
        wrapped(MsalServiceError("HTTP Error: 503", error=None, error_description=None)),
        wrapped(OSError(errno.ECONNREFUSED, "Connection refused")),
        wrapped(subprocess.TimeoutExpired(["az"], 10), "Failed to invoke the Azure CLI"),
        ClientAuthenticationError("Authentication failed: temporarily_unavailable"),
        ClientAuthenticationError("Authentication failed: server_error"),
        with_status(503),
        with_status(429),
        with_status(408),
    ],
)
def test_outages_and_timeouts_are_transient(exc: BaseException) -> None:
    """Network failures, 408/429/5xx and process timeouts anywhere in the chain are TRANSIENT."""
    error = mapped(exc)
    assert error.category is ErrorCategory.TRANSIENT
    assert classify_exception(error) is ErrorCategory.TRANSIENT
    assert "retry later" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        ClientAuthenticationError("Authentication failed: AADSTS7000215: Invalid client secret"),
        wrapped(MsalServiceError("HTTP Error: 400", error=None, error_description=None)),
        with_status(401),
        with_status(403),
        RuntimeError("something unforeseen"),
    ],
)
def test_rejections_and_the_unforeseen_are_auth(exc: BaseException) -> None:
    """Rejected credentials, 4xx statuses and unknown failures are AUTH (refresh, then retry)."""
    error = mapped(exc)
    assert type(error) is CredentialError
    assert error.category is ErrorCategory.AUTH


def test_cli_not_on_path_is_permanent() -> None:
    """azure-identity's "Azure CLI not found on path" becomes a configuration error."""
    error = mapped(CredentialUnavailableError(message="Azure CLI not found on path"))
    assert isinstance(error, CredentialConfigurationError)
    assert "Install it" in str(error)


def test_cli_not_logged_in_says_run_az_login() -> None:
    """azure-identity's not-logged-in message becomes "run `az login`", category AUTH."""
    error = mapped(CredentialUnavailableError(message="Please run 'az login' to set up an account"))
    assert "run `az login`" in str(error)
    assert error.category is ErrorCategory.AUTH


def test_chain_mentioning_the_cli_among_others_is_not_a_cli_error() -> None:
    """A chained credential's report naming the CLI is kept whole, not taken for a CLI error."""
    report = "DefaultAzureCredential failed.\n\tAzureCliCredential: Azure CLI not found on path"
    error = mapped(ClientAuthenticationError(report))
    assert type(error) is CredentialError
    assert report in str(error)


@pytest.mark.parametrize("exc", [ValueError("bad tenant"), TypeError("bad option")])
def test_bad_arguments_are_configuration_errors(exc: BaseException) -> None:
    """ValueError/TypeError (invalid tenant, scope, option) are PERMANENT configuration errors."""
    error = mapped(exc)
    assert isinstance(error, CredentialConfigurationError)
    assert str(exc) in str(error)


def test_message_names_method_and_scope() -> None:
    """Every message starts by naming which method failed for which scope."""
    assert str(mapped(RuntimeError("x"))).startswith(
        f"the test method could not get a token for {SCOPE}: "
    )


def test_long_messages_are_capped() -> None:
    """A huge library message is cut so a log line stays readable."""
    error = mapped(ClientAuthenticationError("x" * 10_000))
    assert len(str(error)) < 2200
    assert str(error).endswith("[...]")


def test_cyclic_cause_chain_terminates() -> None:
    """A cause chain that loops back on itself is walked once, not forever."""
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__, second.__cause__ = second, first
    assert mapped(first).category is ErrorCategory.AUTH


def test_redact_replaces_every_secret_and_ignores_empty_ones() -> None:
    """Each non-empty secret is replaced wherever it occurs; empty secrets change nothing."""
    assert redact("id=abc key=xyz key=xyz", ["xyz", "", "abc"]) == "id=*** key=*** key=***"


@settings(max_examples=100, deadline=None)
@given(
    secret=st.text(alphabet="xyzXYZ0123456789#%", min_size=8, max_size=40).filter(
        lambda text: "#" in text
    ),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
)
def test_secrets_never_survive_mapping(secret: str, before: str, after: str) -> None:
    """Whatever text surrounds a secret in a library's message, the mapped message omits it."""
    error = mapped(ClientAuthenticationError(f"{before}{secret}{after}"), secrets=(secret,))
    assert secret not in str(error)
    assert secret not in repr(error)
