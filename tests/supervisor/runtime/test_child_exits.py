"""How a child's exception becomes the Exit the planner decides on."""

from __future__ import annotations

from core.errors import CircuitOpenError, PermanentError, TransientError, classify_exception
from core.types import ErrorCategory
from supervisor.runtime._exits import exit_of, retry_after_of
from supervisor.runtime._planner import Exit


def test_a_return_is_an_exit_without_category() -> None:
    """No exception means a normal return: no category, not failed."""
    assert exit_of(None, classify_exception) == Exit()
    assert not Exit().failed


def test_an_exception_is_classified_and_only_circuit_open_keeps_retry_after() -> None:
    """The classifier names the category; retry_after is read for CIRCUIT_OPEN only."""
    assert exit_of(TransientError("x", retry_after=3.0), classify_exception) == Exit(
        ErrorCategory.TRANSIENT
    )
    assert exit_of(CircuitOpenError("db", 7.5), classify_exception) == Exit(
        ErrorCategory.CIRCUIT_OPEN, 7.5
    )


def test_the_most_severe_member_of_a_group_decides() -> None:
    """A group of a transient and a permanent failure is PERMANENT."""
    group = ExceptionGroup("two", [TransientError("t"), PermanentError("p")])
    assert exit_of(group, classify_exception).category is ErrorCategory.PERMANENT


def test_a_group_asks_for_its_longest_wait() -> None:
    """retry_after of a group is the longest of its members' (nested groups included)."""
    group = ExceptionGroup(
        "breakers",
        [CircuitOpenError("a", 2.0), ExceptionGroup("inner", [CircuitOpenError("b", 9.0)])],
    )
    assert retry_after_of(group) == 9.0
    assert exit_of(group, classify_exception) == Exit(ErrorCategory.CIRCUIT_OPEN, 9.0)


def test_nonsense_retry_after_values_are_ignored() -> None:
    """A missing, negative, boolean or non-numeric retry_after reads as no wait."""
    errors = [RuntimeError("x")]
    for value in (-1.0, True, "soon"):
        error = RuntimeError("x")
        error.retry_after = value  # type: ignore[attr-defined]
        errors.append(error)
    assert [retry_after_of(e) for e in errors] == [None, None, None, None]


def test_a_custom_classifier_is_used() -> None:
    """The supervisor's classifier, not the default, decides the category."""
    assert exit_of(RuntimeError("x"), lambda _: ErrorCategory.AUTH).category is ErrorCategory.AUTH
