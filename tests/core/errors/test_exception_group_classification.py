"""Exception groups and `most_severe`: the most severe member decides, by SEVERITY order."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import (
    SEVERITY,
    AuthError,
    CircuitOpenError,
    classify_exception,
    most_severe,
)
from core.types import ErrorCategory

EXAMPLES: dict[ErrorCategory, Callable[[], Exception]] = {
    ErrorCategory.TRANSIENT: lambda: ConnectionResetError("reset"),
    ErrorCategory.AUTH: lambda: AuthError("token rejected"),
    ErrorCategory.PERMANENT: lambda: ValueError("bad record"),
    ErrorCategory.CIRCUIT_OPEN: lambda: CircuitOpenError("kusto", 5.0),
    ErrorCategory.UNKNOWN: lambda: RuntimeError("boom"),
}

Tree = tuple[list[ErrorCategory], Exception]


def _leaf(category: ErrorCategory) -> Tree:
    return [category], EXAMPLES[category]()


def _group(children: list[Tree]) -> Tree:
    categories = [category for child_categories, _ in children for category in child_categories]
    return categories, ExceptionGroup("several failures", [exc for _, exc in children])


trees = st.recursive(
    st.sampled_from(ErrorCategory).map(_leaf),
    lambda children: st.lists(children, min_size=1, max_size=4).map(_group),
    max_leaves=12,
)


def _most_severe_by_order(categories: list[ErrorCategory]) -> ErrorCategory:
    return min(categories, key=SEVERITY.index)


def test_severity_orders_every_category_once() -> None:
    """SEVERITY is a total order: each category appears exactly once."""
    assert sorted(SEVERITY, key=lambda c: c.value) == sorted(ErrorCategory, key=lambda c: c.value)
    assert len(SEVERITY) == len(set(SEVERITY))


@pytest.mark.parametrize("category", list(ErrorCategory))
def test_example_members_have_the_category_they_stand_for(category: ErrorCategory) -> None:
    """Each member used in the group properties really is of the category it represents."""
    assert classify_exception(EXAMPLES[category]()) is category


@given(tree=st.lists(trees, min_size=1, max_size=4).map(_group))
def test_nested_group_is_its_most_severe_member(tree: Tree) -> None:
    """A (nested) exception group takes the most severe category among all its leaves."""
    categories, group = tree
    assert classify_exception(group) is _most_severe_by_order(categories)


@given(category=st.sampled_from(ErrorCategory), depth=st.integers(1, 5))
def test_single_member_groups_take_that_members_category(
    category: ErrorCategory, depth: int
) -> None:
    """Groups nested around one member are classified exactly as that member."""
    exc: Exception = EXAMPLES[category]()
    for _ in range(depth):
        exc = ExceptionGroup("wrapped", [exc])
    assert classify_exception(exc) is category


def test_group_members_are_judged_by_their_causes() -> None:
    """An UNKNOWN member raised `from` a known cause counts with the cause's category."""
    wrapper = RuntimeError("handler failed")
    wrapper.__cause__ = ValueError("bad record")
    group = ExceptionGroup("failures", [wrapper, ConnectionResetError("reset")])
    assert classify_exception(group) is ErrorCategory.PERMANENT


def test_an_all_unknown_group_is_judged_by_its_explicit_cause() -> None:
    """A group that is otherwise UNKNOWN defers to its `__cause__`, like any UNKNOWN wrapper."""
    group = ExceptionGroup("failures", [RuntimeError("a"), RuntimeError("b")])
    group.__cause__ = ConnectionResetError("reset")
    assert classify_exception(group) is ErrorCategory.TRANSIENT


def test_base_exception_group_is_classified_like_exception_group() -> None:
    """A BaseExceptionGroup (e.g. holding a KeyboardInterrupt) is judged by its members too."""
    group = BaseExceptionGroup("stop", [KeyboardInterrupt(), AuthError("expired")])
    assert classify_exception(group) is ErrorCategory.AUTH


@given(categories=st.lists(st.sampled_from(ErrorCategory), min_size=1))
def test_most_severe_returns_the_member_first_in_severity_order(
    categories: list[ErrorCategory],
) -> None:
    """most_severe picks a member of the list, and no member ranks before it in SEVERITY."""
    result = most_severe(categories)
    assert result in categories
    assert all(SEVERITY.index(result) <= SEVERITY.index(c) for c in categories)


def test_most_severe_of_nothing_is_unknown() -> None:
    """With no categories at all there is nothing known: UNKNOWN."""
    assert most_severe([]) is ErrorCategory.UNKNOWN
