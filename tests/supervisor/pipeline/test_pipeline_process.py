"""The one line the process leaves on stderr when the root supervisor escalates."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.errors import PermanentError, TransientError
from core.types import ErrorCategory
from supervisor import EscalationError
from supervisor.pipeline.process import MAX_CAUSE_BYTES, escalation_line


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


def test_a_cause_inside_nested_single_member_groups_is_shown_unwrapped() -> None:
    """A task group's one failure, however deeply grouped, is named by its own type and text."""
    cause = ExceptionGroup(
        "unhandled errors in a TaskGroup",
        [ExceptionGroup("unhandled errors in a TaskGroup", [OSError(98, "Address in use")])],
    )
    error = EscalationError(
        supervisor="kafka-pipeline",
        child="health_server",
        category=ErrorCategory.TRANSIENT,
        reason="more than 5 restarts in 60s",
        cause=cause,
    )
    assert escalation_line(error) == (
        "kafka-pipeline: actor 'health_server' escalated (transient): "
        "more than 5 restarts in 60s; last: OSError: [Errno 98] Address in use"
    )


@given(st.integers(min_value=0, max_value=5), st.text(min_size=1).filter(str.strip))
def test_single_member_groups_never_hide_the_cause(depth: int, message: str) -> None:
    """Whatever the nesting depth, the line shows the innermost error's message."""
    cause: BaseException = PermanentError(message)
    for _ in range(depth):
        cause = ExceptionGroup("wrapped", [cause])
    error = EscalationError(
        supervisor="kafka-pipeline",
        child="kafka_consumer",
        category=ErrorCategory.PERMANENT,
        reason="permanent failure",
        cause=cause,
    )
    assert escalation_line(error).endswith(" ".join(message.split()))


def test_a_group_of_several_errors_is_shown_as_the_group() -> None:
    """Several failures at once are not narrowed to one of them: the group is named."""
    cause = ExceptionGroup("two failures", [OSError("a"), ValueError("b")])
    error = EscalationError(
        supervisor="kafka-pipeline",
        child="kafka_consumer",
        category=ErrorCategory.TRANSIENT,
        reason="more than 5 restarts in 60s",
        cause=cause,
    )
    assert "last: ExceptionGroup: two failures (2 sub-exceptions)" in escalation_line(error)


class UnprintableError(ValueError):
    """A cause whose __str__ raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text")


def _escalated(cause: BaseException) -> EscalationError:
    return EscalationError(
        supervisor="kafka-pipeline",
        child="kafka_consumer",
        category=ErrorCategory.PERMANENT,
        reason="permanent failure",
        cause=cause,
    )


def test_a_cause_whose_str_raises_or_holds_surrogates_still_makes_a_line() -> None:
    """The line is built from error_text: repr fallback, escaped surrogates, valid UTF-8."""
    line = escalation_line(_escalated(UnprintableError("x")))
    assert line.endswith("UnprintableError: UnprintableError('x')")
    bad = b"\xff".decode("utf-8", "surrogateescape")
    escaped = escalation_line(_escalated(ValueError(f"bad {bad}")))
    assert escaped.endswith("ValueError: bad \\udcff")
    escaped.encode("utf-8")


def test_a_five_megabyte_cause_makes_a_short_line() -> None:
    """The cause's text is cut: one short line on stderr, not megabytes."""
    line = escalation_line(_escalated(ValueError("x" * 5_000_000)))
    assert len(line.encode()) < MAX_CAUSE_BYTES + 200
    assert line.endswith("…")
