"""The classification API: PipelineErrors' own categories, is_retryable, DefaultErrorClassifier."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import (
    AuthError,
    CircuitOpenError,
    ConfigurationError,
    DefaultErrorClassifier,
    KustoError,
    PipelineError,
    ThrottlingError,
    TokenExpiredError,
    classify_exception,
    is_retryable,
)
from core.types import ErrorCategory, ErrorClassifier

PIPELINE_CLASSES = [
    PipelineError,
    AuthError,
    TokenExpiredError,
    ThrottlingError,
    ConfigurationError,
]
RETRYABLE_WITHOUT_HELP = {
    ErrorCategory.TRANSIENT: True,
    ErrorCategory.UNKNOWN: True,
    ErrorCategory.AUTH: False,
    ErrorCategory.PERMANENT: False,
    ErrorCategory.CIRCUIT_OPEN: False,
}
SAMPLE_EXCEPTIONS = [
    ConnectionResetError("reset"),
    ValueError("bad"),
    RuntimeError("boom"),
    KustoError("throttled", status_code=429),
    CircuitOpenError("kusto", 1.0),
    ExceptionGroup("both", [AuthError("expired"), TimeoutError("slow")]),
]


@given(cls=st.sampled_from(PIPELINE_CLASSES), category=st.sampled_from(ErrorCategory))
def test_pipeline_errors_are_classified_by_their_own_category(
    cls: type[PipelineError], category: ErrorCategory
) -> None:
    """A PipelineError's category attribute is what classification returns, whatever its class."""
    assert classify_exception(cls("boom", category=category)) is category


def test_circuit_open_error_is_classified_circuit_open() -> None:
    """A call refused by an open breaker is CIRCUIT_OPEN: the caller waits, not retries."""
    assert classify_exception(CircuitOpenError("onelake", 3.0)) is ErrorCategory.CIRCUIT_OPEN


@pytest.mark.parametrize(("category", "retryable"), RETRYABLE_WITHOUT_HELP.items())
def test_only_transient_and_unknown_errors_are_retryable(
    category: ErrorCategory, retryable: bool
) -> None:
    """Only TRANSIENT and UNKNOWN retry as is (AUTH needs a refresh, CIRCUIT_OPEN a wait)."""
    assert is_retryable(PipelineError("boom", category=category)) is retryable


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [(ConnectionResetError("reset"), True), (ValueError("bad"), False)],
    ids=repr,
)
def test_is_retryable_applies_to_foreign_exceptions(exc: BaseException, retryable: bool) -> None:
    """is_retryable classifies library and builtin exceptions too, not only PipelineErrors."""
    assert is_retryable(exc) is retryable


def test_default_classifier_satisfies_the_protocol() -> None:
    """DefaultErrorClassifier is an ErrorClassifier at runtime, so it can be plugged in anywhere."""
    assert isinstance(DefaultErrorClassifier(), ErrorClassifier)


@pytest.mark.parametrize("exc", SAMPLE_EXCEPTIONS, ids=repr)
def test_default_classifier_agrees_with_classify_exception(exc: BaseException) -> None:
    """DefaultErrorClassifier.classify gives the same answer as classify_exception."""
    assert DefaultErrorClassifier().classify(exc) is classify_exception(exc)
