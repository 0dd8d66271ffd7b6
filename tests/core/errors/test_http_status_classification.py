"""classify_http_status: the rule mapping an HTTP status to a category, checked for all."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.errors import classify_http_status
from core.types import ErrorCategory

AUTH_STATUSES = (401, 403)
RETRYABLE_4XX = (408, 429)


@given(status=st.integers(100, 599))
def test_every_status_from_100_to_599_has_a_category(status: int) -> None:
    """classify_http_status is total over 100..599: it returns a category and never raises."""
    assert isinstance(classify_http_status(status), ErrorCategory)


@given(status=st.sampled_from(AUTH_STATUSES))
def test_unauthorized_and_forbidden_are_auth(status: int) -> None:
    """401 and 403 mean the credentials were rejected, so they are AUTH."""
    assert classify_http_status(status) is ErrorCategory.AUTH


@given(status=st.sampled_from(RETRYABLE_4XX) | st.integers(500, 599))
def test_request_timeout_throttling_and_server_errors_are_transient(status: int) -> None:
    """408, 429 and every 5xx may succeed later, so they are TRANSIENT."""
    assert classify_http_status(status) is ErrorCategory.TRANSIENT


@given(status=st.integers(400, 499).filter(lambda s: s not in AUTH_STATUSES + RETRYABLE_4XX))
def test_other_client_errors_are_permanent(status: int) -> None:
    """Every other 4xx rejects the request itself, so repeating it cannot help: PERMANENT."""
    assert classify_http_status(status) is ErrorCategory.PERMANENT


@given(status=st.integers(100, 399) | st.integers(max_value=99) | st.integers(min_value=600))
def test_non_error_and_out_of_range_statuses_are_unknown(status: int) -> None:
    """Informational, success, redirect and non-HTTP numbers are no known failure: UNKNOWN."""
    assert classify_http_status(status) is ErrorCategory.UNKNOWN
