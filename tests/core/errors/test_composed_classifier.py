"""compose_classifier: a domain's classifier first, the built-in rules where it has no answer."""

from __future__ import annotations

import logging

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.utils import CaseInsensitiveDict
from hypothesis import given
from hypothesis import strategies as st

from core.errors import (
    ComposedClassifier,
    DefaultErrorClassifier,
    classify_exception,
    compose_classifier,
)
from core.resilience import CircuitBreaker, CircuitBreakerConfig, RetryConfig, with_retry
from core.types import ErrorCategory, ErrorClassifier


class QuotaExceededError(Exception):
    """A domain error the built-in rules do not know (they call it UNKNOWN)."""


class DomainRules:
    """A user's classifier: knows QuotaExceededError, defers on anything else."""

    def classify(self, exc: BaseException) -> ErrorCategory:
        if isinstance(exc, QuotaExceededError):
            return ErrorCategory.TRANSIENT
        return ErrorCategory.UNKNOWN


def permanent_value_errors_are_transient(exc: BaseException) -> ErrorCategory | None:
    """A plain function overriding a built-in rule (ValueError is PERMANENT built-in)."""
    return ErrorCategory.TRANSIENT if isinstance(exc, ValueError) else None


ERRORS = st.sampled_from(
    [ValueError("v"), KeyError("k"), TimeoutError("t"), RuntimeError("r"), QuotaExceededError()]
)


@given(error=ERRORS)
def test_the_users_answer_wins_and_no_answer_falls_back_to_the_built_in_rules(
    error: Exception,
) -> None:
    """Where the user answers, that is the category; where it defers, classify_exception's."""
    composed = compose_classifier(DomainRules())
    expected = (
        ErrorCategory.TRANSIENT
        if isinstance(error, QuotaExceededError)
        else classify_exception(error)
    )
    assert composed.classify(error) is expected


def test_a_plain_function_is_a_classifier_too() -> None:
    """A function returning a category or None can override a built-in rule."""
    composed = compose_classifier(permanent_value_errors_are_transient)
    assert composed.classify(ValueError("x")) is ErrorCategory.TRANSIENT
    assert composed.classify(KeyError("x")) is ErrorCategory.PERMANENT


def test_members_and_causes_are_asked_too() -> None:
    """Inside a group or behind `raise ... from`, the user's knowledge still applies."""
    composed = compose_classifier(DomainRules())
    group = ExceptionGroup("batch", [QuotaExceededError(), RuntimeError("?")])
    assert composed.classify(group) is ErrorCategory.TRANSIENT
    wrapper = RuntimeError("wrapped")
    wrapper.__cause__ = QuotaExceededError()
    assert composed.classify(wrapper) is ErrorCategory.TRANSIENT


def test_a_classifier_that_raises_is_logged_and_the_built_in_rules_decide(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in the user's classifier cannot break the decision path."""

    def broken(exc: BaseException) -> ErrorCategory:
        raise KeyError("bug")

    with caplog.at_level(logging.ERROR, logger="core.errors.classification"):
        assert compose_classifier(broken).classify(ValueError("x")) is ErrorCategory.PERMANENT
    assert "error classifier" in caplog.text


def test_none_gives_the_built_in_rules_and_a_non_classifier_is_refused() -> None:
    """No user classifier means the default; an object that cannot classify is a TypeError."""
    assert isinstance(compose_classifier(None), DefaultErrorClassifier)
    assert isinstance(compose_classifier(DomainRules()), ErrorClassifier)
    with pytest.raises(TypeError, match="classify"):
        ComposedClassifier(42)  # type: ignore[arg-type]


def test_with_retry_retries_what_the_domain_calls_transient() -> None:
    """with_retry(classifier=...) retries a domain error the built-in rules would not know."""
    calls: list[int] = []

    @with_retry(
        RetryConfig(max_attempts=3, base_delay_s=0.001),
        classifier=compose_classifier(permanent_value_errors_are_transient),
        sleep=lambda _: None,
    )
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("domain says: try again")
        return "ok"

    assert flaky() == "ok"
    assert len(calls) == 3


def test_circuit_breaker_counts_what_its_classifier_calls_transient() -> None:
    """CircuitBreaker(classifier=...) opens on errors the domain calls TRANSIENT."""
    breaker = CircuitBreaker(
        "dep",
        CircuitBreakerConfig(failure_threshold=2),
        classifier=compose_classifier(permanent_value_errors_are_transient),
    )
    plain = CircuitBreaker("plain", CircuitBreakerConfig(failure_threshold=2))
    for guard in (breaker, plain):
        for _ in range(2):
            with pytest.raises(ValueError):
                guard.call(_raise_value_error)
    assert breaker.stats.failures == 2
    assert plain.stats.failures == 0


def test_with_retry_waits_as_long_as_retry_after_asks() -> None:
    """A 503 whose Retry-After says 9 s is retried after 9 s, above the backoff."""

    class Response:
        """azure-core reads status, reason and headers; no HTTP server is needed for that."""

        request = None
        status_code = 503
        reason = "busy"
        headers = CaseInsensitiveDict({"Retry-After": "9"})

        def text(self) -> str:
            return ""

    sleeps: list[float] = []
    attempts: list[int] = []

    @with_retry(RetryConfig(max_attempts=2, base_delay_s=0.01), sleep=sleeps.append)
    def call() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise HttpResponseError(response=Response())

    call()
    assert sleeps == [9.0]


def _raise_value_error() -> None:
    raise ValueError("x")
