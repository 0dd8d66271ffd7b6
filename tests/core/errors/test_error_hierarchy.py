"""The pipeline's exception hierarchy: categories, retry_after, context and rendering."""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import (
    AuthError,
    CircuitOpenError,
    ConfigurationError,
    ConnectionError,
    DeltaTableError,
    DomainError,
    DownloadError,
    KustoError,
    OneLakeError,
    PermanentError,
    PipelineError,
    ThrottlingError,
    TimeoutError,
    TokenExpiredError,
    TransientError,
    classify_http_status,
)
from core.types import ErrorCategory

HIERARCHY = [
    (PipelineError, Exception, ErrorCategory.UNKNOWN),
    (AuthError, PipelineError, ErrorCategory.AUTH),
    (TokenExpiredError, AuthError, ErrorCategory.AUTH),
    (TransientError, PipelineError, ErrorCategory.TRANSIENT),
    (ConnectionError, TransientError, ErrorCategory.TRANSIENT),
    (TimeoutError, TransientError, ErrorCategory.TRANSIENT),
    (ThrottlingError, TransientError, ErrorCategory.TRANSIENT),
    (PermanentError, PipelineError, ErrorCategory.PERMANENT),
    (ConfigurationError, PermanentError, ErrorCategory.PERMANENT),
]
MESSAGE_CLASSES = [cls for cls, _, _ in HIERARCHY]
DOMAIN_CLASSES = [KustoError, DeltaTableError, OneLakeError, DownloadError]
categories = st.sampled_from(ErrorCategory)


@pytest.mark.parametrize(("cls", "parent", "category"), HIERARCHY)
def test_class_has_its_parent_and_default_category(
    cls: type[PipelineError], parent: type[Exception], category: ErrorCategory
) -> None:
    """Each error class derives from its parent and defaults to its documented category."""
    assert issubclass(cls, parent)
    assert cls("boom").category is category


@given(cls=st.sampled_from(MESSAGE_CLASSES), category=categories)
def test_explicit_category_overrides_the_class_default(
    cls: type[PipelineError], category: ErrorCategory
) -> None:
    """An explicit `category=` wins over the class default, whatever the class."""
    assert cls("boom", category=category).category is category


@given(retry_after=st.floats(allow_nan=True, allow_infinity=True))
def test_retry_after_is_accepted_only_when_finite_and_not_negative(retry_after: float) -> None:
    """retry_after must be a finite number of seconds >= 0; anything else is a ValueError."""
    if math.isfinite(retry_after) and retry_after >= 0:
        assert PipelineError("boom", retry_after=retry_after).retry_after == retry_after
    else:
        with pytest.raises(ValueError, match="retry_after"):
            PipelineError("boom", retry_after=retry_after)


def test_retry_after_defaults_to_none() -> None:
    """Without retry_after the error makes no promise about when to retry."""
    assert PipelineError("boom").retry_after is None


def test_context_is_copied_from_the_callers_mapping() -> None:
    """Mutating the mapping passed as context afterwards does not change the error's context."""
    fields = {"topic": "orders"}
    error = PipelineError("boom", context=fields)
    fields["topic"] = "changed"
    fields["extra"] = "added"
    assert error.context == {"topic": "orders"}


def test_default_context_is_not_shared_between_errors() -> None:
    """Each error without context gets its own empty dict, so enriching one leaves others alone."""
    first, second = PipelineError("a"), PipelineError("b")
    first.context["partition"] = 3
    assert second.context == {}


@given(cls=st.sampled_from(MESSAGE_CLASSES), message=st.text())
def test_str_is_the_message_and_repr_names_class_message_and_category(
    cls: type[PipelineError], message: str
) -> None:
    """str() is the bare message; repr() shows the class, the quoted message and the category."""
    error = cls(message)
    assert str(error) == message
    assert error.message == message
    assert repr(error).startswith(f"{cls.__name__}({message!r}")
    assert repr(error).endswith(f"category={error.category.name})")


def test_circuit_open_error_carries_breaker_name_and_retry_after() -> None:
    """CircuitOpenError is CIRCUIT_OPEN and names its breaker in attributes, context and message."""
    error = CircuitOpenError("kusto-ingest", 12.5, context={"topic": "orders"})
    assert isinstance(error, PipelineError)
    assert error.category is ErrorCategory.CIRCUIT_OPEN
    assert error.breaker_name == "kusto-ingest"
    assert error.retry_after == 12.5
    assert error.context == {"breaker": "kusto-ingest", "topic": "orders"}
    assert "'kusto-ingest'" in str(error)
    assert "12.500s" in str(error)


@given(retry_after=st.floats(allow_nan=False, allow_infinity=False))
def test_circuit_open_error_clamps_a_negative_wait_to_zero(retry_after: float) -> None:
    """A negative wait (clock arithmetic) becomes 0 in both retry_after and the message."""
    error = CircuitOpenError("b", retry_after)
    expected = max(0.0, retry_after)
    assert error.retry_after == expected
    assert str(error).endswith(f"retry in {expected:.3f}s")


def test_circuit_open_error_accepts_a_message_first_like_every_pipeline_error() -> None:
    """`CircuitOpenError("message")` is the message, with no breaker name and no wait."""
    error = CircuitOpenError("downstream refused: circuit open")
    assert str(error) == "downstream refused: circuit open"
    assert error.message == "downstream refused: circuit open"
    assert (error.breaker_name, error.retry_after) == ("", 0.0)
    assert error.category is ErrorCategory.CIRCUIT_OPEN
    assert CircuitOpenError("open", retry_after=3.0).retry_after == 3.0


@pytest.mark.parametrize(
    "error",
    [CircuitOpenError("just a message"), CircuitOpenError("b", 2.0, context={"k": 1})],
)
def test_circuit_open_error_survives_pickling_in_both_spellings(error: CircuitOpenError) -> None:
    """A pickled copy has the same message, breaker name and wait."""
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.breaker_name, copy.retry_after) == (
        str(error),
        error.breaker_name,
        error.retry_after,
    )


def test_circuit_open_error_makes_a_non_finite_wait_zero() -> None:
    """An infinite wait cannot reach a sleep."""
    assert CircuitOpenError("b", math.inf).retry_after == 0.0


@pytest.mark.parametrize("cls", DOMAIN_CLASSES)
def test_domain_errors_are_domain_and_pipeline_errors(cls: type[DomainError]) -> None:
    """Kusto, Delta table, OneLake and download errors share DomainError's status handling."""
    assert issubclass(cls, DomainError)
    assert issubclass(DomainError, PipelineError)


@given(cls=st.sampled_from(DOMAIN_CLASSES), status=st.integers(100, 599))
def test_domain_error_category_follows_its_status_code(cls: type[DomainError], status: int) -> None:
    """A DomainError with status_code= takes the category of that HTTP status and records it."""
    error = cls("request failed", status_code=status, context={"table": "t"})
    assert error.category is classify_http_status(status)
    assert error.status_code == status
    assert error.context == {"table": "t", "status_code": status}


@given(cls=st.sampled_from(DOMAIN_CLASSES), status=st.integers(100, 599), category=categories)
def test_domain_error_explicit_category_wins_over_status(
    cls: type[DomainError], status: int, category: ErrorCategory
) -> None:
    """An explicit category= overrides what the status code would imply."""
    assert cls("request failed", status_code=status, category=category).category is category


@pytest.mark.parametrize("cls", DOMAIN_CLASSES)
def test_domain_error_without_status_or_category_is_unknown(cls: type[DomainError]) -> None:
    """With neither status_code nor category a DomainError is UNKNOWN and records no status."""
    error = cls("request failed", retry_after=3.0)
    assert error.category is ErrorCategory.UNKNOWN
    assert error.status_code is None
    assert "status_code" not in error.context
    assert error.retry_after == 3.0


SAMPLES = [
    PipelineError("plain", retry_after=1.5, context={"k": "v"}),
    TokenExpiredError("expired", context={"scope": "s"}),
    ThrottlingError("slow down", retry_after=30.0),
    ConfigurationError("bad config", category=ErrorCategory.AUTH),
    CircuitOpenError("onelake", 4.0, context={"topic": "t"}),
    KustoError("ingest failed", status_code=503, retry_after=2.0),
    DownloadError("gone", category=ErrorCategory.PERMANENT),
]


def _pickle_round_trip(error: PipelineError) -> PipelineError:
    clone: PipelineError = pickle.loads(pickle.dumps(error))
    return clone


@pytest.mark.parametrize("error", SAMPLES, ids=lambda error: type(error).__name__)
@pytest.mark.parametrize("duplicate", [copy.copy, _pickle_round_trip], ids=["copy", "pickle"])
def test_errors_survive_copy_and_pickle(
    error: PipelineError, duplicate: Callable[[PipelineError], PipelineError]
) -> None:
    """Copying or pickling an error (e.g. back from a worker process) keeps every field."""
    clone = duplicate(error)
    assert type(clone) is type(error)
    assert clone.__dict__ == error.__dict__
    assert str(clone) == str(error)
    assert (clone.args, clone.context, clone.retry_after) == (
        error.args,
        error.context,
        error.retry_after,
    )
