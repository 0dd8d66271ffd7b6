"""The one line the process leaves on stderr when the root supervisor escalates."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.errors import PermanentError, TransientError
from core.types import ErrorCategory
from supervisor import EscalationError
from supervisor.app_process import escalation_line


def test_a_permanent_failure_shows_the_cause_as_the_actor_said_it() -> None:
    """PERMANENT: actor, category, and the pipeline error's own message."""
    cause = PermanentError("poison storm: 60 of last 100 records dead-lettered")
    error = EscalationError(
        supervisor="kafka-pipeline",
        child="kafka_consumer",
        category=ErrorCategory.PERMANENT,
        reason="permanent failure",
        cause=cause,
    )
    assert escalation_line(error) == (
        "kafka-pipeline: actor 'kafka_consumer' escalated (permanent): "
        "poison storm: 60 of last 100 records dead-lettered"
    )


def test_an_exhausted_restart_intensity_shows_the_reason_and_the_last_error() -> None:
    """Too many restarts: the reason, then the last error with its type when not ours."""
    error = EscalationError(
        supervisor="kafka-pipeline",
        child="kafka_consumer",
        category=ErrorCategory.TRANSIENT,
        reason="more than 5 restarts in 60s",
        cause=OSError("connection refused"),
    )
    assert escalation_line(error) == (
        "kafka-pipeline: actor 'kafka_consumer' escalated (transient): "
        "more than 5 restarts in 60s; last: OSError: connection refused"
    )


def test_a_child_that_kept_returning_shows_the_reason() -> None:
    """No cause at all (an ALWAYS child returning in a loop): the reason alone."""
    error = EscalationError(
        supervisor="kafka-pipeline",
        child="breaker_monitor",
        category=None,
        reason="more than 5 restarts in 60s",
        cause=None,
    )
    assert escalation_line(error) == (
        "kafka-pipeline: actor 'breaker_monitor' escalated (unknown): more than 5 restarts in 60s"
    )


@given(st.text(), st.sampled_from(list(ErrorCategory)))
def test_the_message_is_always_one_line(message: str, category: ErrorCategory) -> None:
    """Whatever the cause says, newlines and runs of blanks included, the result is one line."""
    error = EscalationError(
        supervisor="root",
        child="c",
        category=category,
        reason="why\nnot",
        cause=TransientError(message),
    )
    line = escalation_line(error)
    assert len(line.splitlines()) == 1
    assert line.startswith(f"kafka-pipeline: actor 'c' escalated ({category.value}): ")
