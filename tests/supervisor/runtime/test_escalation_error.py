"""EscalationError: one clear line, and classified like the child's failure."""

from __future__ import annotations

from core.errors import PipelineError, TransientError, classify_exception
from core.types import ErrorCategory
from supervisor import EscalationError


def test_str_names_supervisor_child_category_reason_and_cause_on_one_line() -> None:
    """The message is one line with the supervisor, the child, the category and the cause."""
    cause = TransientError("broker\nunreachable")
    error = EscalationError(
        supervisor="root",
        child="consumer",
        category=ErrorCategory.TRANSIENT,
        reason="more than 3 restarts in 5s",
        cause=cause,
    )
    assert str(error) == (
        "supervisor 'root': child 'consumer' failed TRANSIENT "
        "(more than 3 restarts in 5s): TransientError: broker unreachable"
    )
    assert error.__cause__ is cause
    assert (error.supervisor, error.child, error.category) == ("root", "consumer", cause.category)


def test_a_child_that_kept_returning_escalates_as_unknown() -> None:
    """Without a cause the message says the child returned, and the category is UNKNOWN."""
    error = EscalationError(
        supervisor="s", child="c", category=None, reason="more than 0 restarts in 1s", cause=None
    )
    assert str(error) == "supervisor 's': child 'c' returned (more than 0 restarts in 1s)"
    assert error.category is ErrorCategory.UNKNOWN


def test_the_taxonomy_classifies_it_by_the_childs_category() -> None:
    """classify_exception sees a PipelineError whose category is the failed child's."""
    for category in ErrorCategory:
        error = EscalationError(
            supervisor="s", child="c", category=category, reason="r", cause=RuntimeError()
        )
        assert isinstance(error, PipelineError)
        assert classify_exception(error) is category
