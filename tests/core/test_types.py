"""The shared vocabulary in core.types: ErrorCategory and the runtime-checkable protocols."""

from __future__ import annotations

import core
import core.errors
from core.types import ErrorCategory, ErrorClassifier, TokenProvider


class _StaticTokenProvider:
    """A minimal TokenProvider: the protocol asks only for get_token(scope) -> str."""

    def get_token(self, scope: str) -> str:
        return f"token-for-{scope}"


class _EverythingTransient:
    """A minimal ErrorClassifier implementation of a domain that retries everything."""

    def classify(self, exc: BaseException) -> ErrorCategory:
        return ErrorCategory.TRANSIENT


def test_category_values_are_lower_case_names() -> None:
    """Each category's value is its name in lower case, so logs and metric labels match the code."""
    assert [category.value for category in ErrorCategory] == [
        category.name.lower() for category in ErrorCategory
    ]


def test_categories_round_trip_through_their_values() -> None:
    """A category written to a log or message as its value reads back as the same member."""
    assert all(ErrorCategory(category.value) is category for category in ErrorCategory)


def test_package_root_reexports_the_shared_names() -> None:
    """`core.ErrorCategory` and friends are the objects defined in core.types and core.errors."""
    assert core.ErrorCategory is ErrorCategory
    assert core.ErrorClassifier is ErrorClassifier
    assert core.TokenProvider is TokenProvider
    assert core.PipelineError is core.errors.PipelineError
    assert core.classify_exception is core.errors.classify_exception


def test_object_with_get_token_satisfies_token_provider() -> None:
    """Any object with a get_token(scope) method is a TokenProvider at runtime."""
    assert isinstance(_StaticTokenProvider(), TokenProvider)


def test_object_without_get_token_is_not_a_token_provider() -> None:
    """An object lacking get_token is rejected by the runtime protocol check."""
    assert not isinstance(_EverythingTransient(), TokenProvider)


def test_object_with_classify_satisfies_error_classifier() -> None:
    """Any object with classify(exc) is an ErrorClassifier; one without it is not."""
    assert isinstance(_EverythingTransient(), ErrorClassifier)
    assert not isinstance(_StaticTokenProvider(), ErrorClassifier)
