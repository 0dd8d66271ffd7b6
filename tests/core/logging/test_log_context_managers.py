"""LogContext and its specialisations, and the timed log_phase / log_operation events."""

from __future__ import annotations

import logging
import time

import pytest
from log_capture import CapturedLog

from core.errors import TransientError
from core.logging import (
    MASK,
    JSONFormatter,
    LogContext,
    OperationContext,
    StageLogContext,
    get_correlation_id,
    get_log_context,
    log_operation,
    log_phase,
    set_correlation_id,
)


def json_log() -> CapturedLog:
    """A logger writing JSON lines into memory."""
    return CapturedLog(JSONFormatter(), name="tests.phases")


def test_log_context_adds_its_fields_inside_and_removes_them_after() -> None:
    """Fields are present inside the block and gone once it is left."""
    with LogContext(run_id="r1", attempt=2):
        assert get_log_context() == {"run_id": "r1", "attempt": 2}
    assert get_log_context() == {}


def test_records_logged_inside_a_log_context_carry_its_fields() -> None:
    """A record logged inside the block has the fields; one logged after has not."""
    log = json_log()
    with LogContext(run_id="r1"):
        log.logger.info("inside")
    log.logger.info("outside")
    inside, outside = log.records()
    assert inside["run_id"] == "r1"
    assert "run_id" not in outside


def test_nested_log_contexts_merge_with_the_inner_value_winning() -> None:
    """An inner context adds its fields and overrides the outer one's on a clash."""
    with LogContext(actor="consumer", stage="outer"), LogContext(stage="inner", batch=7):
        assert get_log_context() == {"actor": "consumer", "stage": "inner", "batch": 7}


def test_leaving_an_inner_context_restores_the_outer_fields_exactly() -> None:
    """After the inner block, the outer block's fields are back, overridden values included."""
    with LogContext(stage="outer"):
        with LogContext(stage="inner", extra_field=1):
            pass
        assert get_log_context() == {"stage": "outer"}


def test_a_log_context_is_left_cleanly_when_its_block_raises() -> None:
    """An exception propagates out of the block and the fields are removed all the same."""
    with pytest.raises(RuntimeError, match="boom"), LogContext(stage="failing"):
        raise RuntimeError("boom")
    assert get_log_context() == {}


def test_entering_a_log_context_that_is_already_entered_fails() -> None:
    """One instance serves one block at a time: a second entry raises RuntimeError."""
    context = LogContext(stage="once")
    with context, pytest.raises(RuntimeError, match="already entered"):
        context.__enter__()


def test_leaving_a_log_context_that_was_not_entered_fails() -> None:
    """__exit__ without __enter__ raises RuntimeError instead of corrupting the state."""
    with pytest.raises(RuntimeError, match="not entered"):
        LogContext(stage="never").__exit__(None, None, None)


def test_a_log_context_can_be_used_again_after_it_was_left() -> None:
    """After its block ends, the same instance can enter a new block."""
    context = LogContext(stage="again")
    for _ in range(2):
        with context:
            assert get_log_context() == {"stage": "again"}
    assert get_log_context() == {}


def test_log_context_fields_property_is_a_copy_of_the_given_fields() -> None:
    """`fields` returns the raw fields, and changing the copy changes nothing."""
    context = LogContext(token="t", stage="s")
    fields = context.fields
    fields["stage"] = "changed"
    assert context.fields == {"token": "t", "stage": "s"}


def test_log_context_masks_secret_fields_and_renames_output_keys() -> None:
    """Secret names are masked and names like "level" become field_level when written."""
    log = json_log()
    with LogContext(api_key="k-123", level="deep"):
        log.logger.warning("w")
    line = log.last()
    assert line["api_key"] == MASK
    assert line["field_level"] == "deep"
    assert line["level"] == "WARNING"
    assert "k-123" not in log.text


def test_log_context_fields_are_rendered_when_the_context_is_created() -> None:
    """A mutable value changed after creation is logged as it was (the documented snapshot)."""
    batch = ["a"]
    context = LogContext(batch=batch)
    batch.append("b")
    with context:
        assert get_log_context() == {"batch": ["a"]}


def test_a_correlation_id_set_inside_a_log_context_ends_with_it() -> None:
    """Leaving a context restores the whole state, the correlation id included."""
    set_correlation_id("outer")
    with LogContext(stage="s"):
        set_correlation_id("inner")
        assert get_correlation_id() == "inner"
    assert get_correlation_id() == "outer"


def test_stage_log_context_adds_the_stage_and_its_fields() -> None:
    """StageLogContext is a LogContext whose fields include `stage`."""
    context = StageLogContext("enrich", source="kafka")
    assert isinstance(context, LogContext)
    with context:
        assert get_log_context() == {"stage": "enrich", "source": "kafka"}


def test_operation_context_adds_the_operation_and_its_fields() -> None:
    """OperationContext is a LogContext whose fields include `operation`."""
    context = OperationContext("commit", partition=3)
    assert isinstance(context, LogContext)
    with context:
        assert get_log_context() == {"operation": "commit", "partition": 3}


def test_log_phase_logs_start_and_successful_end_with_duration() -> None:
    """A successful phase logs "<name> started" and "<name> finished" with outcome success."""
    log = json_log()
    with log_phase(log.logger, "warm-up", target="cache"):
        pass
    start, end = log.records()
    assert (start["message"], start["event"], start["phase"]) == (
        "warm-up started",
        "start",
        "warm-up",
    )
    assert (end["message"], end["event"], end["outcome"]) == ("warm-up finished", "end", "success")
    assert end["target"] == "cache"
    assert end["duration_ms"] >= 0
    assert start["level"] == end["level"] == "INFO"


def test_log_phase_fields_reach_records_logged_inside_and_end_with_it() -> None:
    """Records inside the phase carry `phase` and its fields; after it they are gone."""
    log = json_log()
    with log_phase(log.logger, "load", source="blob"):
        log.logger.info("working")
    log.logger.info("after")
    working, after = log.records()[1], log.records()[3]
    assert (working["phase"], working["source"]) == ("load", "blob")
    assert "phase" not in after


def test_log_phase_reports_an_error_and_re_raises_it() -> None:
    """A failing phase logs outcome error at ERROR with the type and category, then re-raises."""
    log = json_log()
    failure = TransientError("broker away")
    with pytest.raises(TransientError) as raised, log_phase(log.logger, "fetch"):
        raise failure
    assert raised.value is failure
    end = log.last()
    assert (end["level"], end["message"], end["outcome"]) == ("ERROR", "fetch failed", "error")
    assert (end["error_type"], end["error_category"]) == ("TransientError", "transient")
    assert "exception" not in end


def test_log_phase_reports_an_interruption_as_cancelled() -> None:
    """A BaseException such as KeyboardInterrupt ends the phase as "cancelled" and propagates."""
    log = json_log()
    with pytest.raises(KeyboardInterrupt), log_phase(log.logger, "drain"):
        raise KeyboardInterrupt
    end = log.last()
    assert (end["outcome"], end["error_type"], end["level"]) == (
        "cancelled",
        "KeyboardInterrupt",
        "INFO",
    )


def test_log_phase_uses_the_given_level_for_its_events() -> None:
    """level=DEBUG logs the start and end events at DEBUG."""
    log = json_log()
    with log_phase(log.logger, "tick", level=logging.DEBUG):
        pass
    assert [record["level"] for record in log.records()] == ["DEBUG", "DEBUG"]


def test_log_phase_measures_the_duration_of_the_block() -> None:
    """duration_ms covers the time spent inside the block."""
    log = json_log()
    with log_phase(log.logger, "sleep"):
        time.sleep(0.02)
    assert log.last()["duration_ms"] >= 20


def test_log_operation_logs_start_and_end_with_the_operation_field() -> None:
    """log_operation is the same shape as log_phase, naming `operation` instead."""
    log = json_log()
    with log_operation(log.logger, "commit", partition=1):
        log.logger.info("committing")
    start, inner, end = log.records()
    assert start["operation"] == inner["operation"] == end["operation"] == "commit"
    assert inner["partition"] == 1
    assert (end["message"], end["outcome"]) == ("commit finished", "success")


def test_log_operation_classifies_the_error_it_re_raises() -> None:
    """A ValueError is reported with the PERMANENT category the error taxonomy gives it."""
    log = json_log()
    with pytest.raises(ValueError, match="bad"), log_operation(log.logger, "parse"):
        raise ValueError("bad")
    end = log.last()
    assert (end["operation"], end["error_type"], end["error_category"]) == (
        "parse",
        "ValueError",
        "permanent",
    )
