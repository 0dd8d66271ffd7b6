"""Formatters bound each line's size; third-party DEBUG records are dropped by setup_logging."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from log_capture import CapturedLog

from core.logging import (
    DEFAULT_MAX_LINE_BYTES,
    ConsoleFormatter,
    JSONFormatter,
    ThirdPartyDebugFilter,
    setup_logging,
)

LIMIT = 4096


def test_a_five_megabyte_exception_message_becomes_a_bounded_line() -> None:
    """The default limit holds: message and traceback are cut in the middle, size reported."""
    log = CapturedLog(JSONFormatter())
    huge = "start-" + "x" * 5_000_000 + "-end"
    try:
        raise ValueError(huge)
    except ValueError:
        log.logger.exception("failed: %s", huge)
    line = log.lines()[0]
    record = json.loads(line)
    assert len(line.encode()) <= DEFAULT_MAX_LINE_BYTES
    assert record["message"].startswith("failed: start-")
    assert record["message"].endswith("-end")
    assert "characters cut" in record["message"]
    assert record["exception"].endswith("-end")
    assert record["log_truncated_bytes"] > 10_000_000


@settings(max_examples=60, deadline=None)
@given(
    message=st.text(max_size=3000),
    fields=st.dictionaries(
        st.text("abcdefgh", min_size=1, max_size=6),
        st.text(max_size=2000) | st.lists(st.text(max_size=300), max_size=10),
        max_size=30,
    ),
    json_format=st.booleans(),
)
def test_every_line_fits_the_limit_whatever_the_fields(
    message: str, fields: dict[str, object], json_format: bool
) -> None:
    """JSON or console, many long fields or one: the line never exceeds max_line_bytes."""
    formatter = (JSONFormatter if json_format else ConsoleFormatter)(max_line_bytes=LIMIT)
    log = CapturedLog(formatter)
    log.logger.info("%s", message, extra={f"f_{k}": v for k, v in fields.items()})
    text = log.text[:-1]  # the handler's newline
    assert len(text.encode("utf-8", "surrogatepass")) <= LIMIT
    if json_format:
        json.loads(text)


def test_a_line_within_the_limit_is_written_unchanged() -> None:
    """Short lines are not touched and carry no truncation field."""
    log = CapturedLog(JSONFormatter(max_line_bytes=LIMIT))
    log.logger.info("ok", extra={"n": 1})
    assert "log_truncated_bytes" not in log.records()[0]


def test_a_limit_below_one_kilobyte_is_refused() -> None:
    """Too small a limit could not hold a timestamp and a message."""
    with pytest.raises(ValueError, match="max_line_bytes"):
        JSONFormatter(max_line_bytes=100)


def test_setup_logging_drops_third_party_debug_records() -> None:
    """With the root at DEBUG, aiokafka's DEBUG lines are dropped; its INFO and ours stay."""
    stream = io.StringIO()
    handler = setup_logging("DEBUG", stream=stream)
    try:
        logging.getLogger("aiokafka.producer").debug("value b'secret payload'")
        logging.getLogger("aiokafka.producer").info("producer started")
        logging.getLogger("actors.consumer").debug("our debug")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert messages == ["producer started", "our debug"]


@pytest.mark.parametrize(
    ("name", "passes"),
    [("aiokafka", False), ("aiokafka.conn", False), ("aiokafkax", True), ("azure.core", False)],
)
def test_the_filter_matches_listed_loggers_and_their_children_only(name: str, passes: bool) -> None:
    """A listed name or a dotted child is filtered at DEBUG; a longer name is not a child."""
    record = logging.LogRecord(name, logging.DEBUG, "", 0, "m", None, None)
    assert ThirdPartyDebugFilter().filter(record) is passes
