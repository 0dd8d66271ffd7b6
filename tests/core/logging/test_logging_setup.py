"""setup_logging on the real root logger: handler, format, level, idempotence."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import orjson
import pytest

from core.logging import (
    HANDLER_NAME,
    ConsoleFormatter,
    JSONFormatter,
    KafkaLogContext,
    LogContext,
    set_correlation_id,
    setup_logging,
)


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[logging.Logger]:
    """Give the test the root logger and put its handlers and level back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def ours(root: logging.Logger) -> list[logging.Handler]:
    """The handlers setup_logging installed on `root`."""
    return [handler for handler in root.handlers if handler.get_name() == HANDLER_NAME]


def test_installs_one_named_json_handler_on_the_root_logger() -> None:
    """The returned handler is on the root logger, named, and formats JSON by default."""
    handler = setup_logging(stream=io.StringIO())
    assert ours(logging.getLogger()) == [handler]
    assert isinstance(handler.formatter, JSONFormatter)


def test_records_of_any_logger_reach_the_stream_as_json_lines() -> None:
    """A record from a named logger propagates to the root and is written as one JSON line."""
    stream = io.StringIO()
    setup_logging(stream=stream)
    logging.getLogger("tests.setup.orders").info("consumed %d", 3, extra={"lag": 0})
    line = orjson.loads(stream.getvalue())
    assert (line["logger"], line["message"], line["lag"]) == ("tests.setup.orders", "consumed 3", 0)


def test_console_format_is_chosen_with_json_format_false() -> None:
    """json_format=False installs the ConsoleFormatter and writes key=value text."""
    stream = io.StringIO()
    handler = setup_logging(json_format=False, stream=stream)
    logging.getLogger("tests.setup").warning("slow", extra={"ms": 12})
    assert isinstance(handler.formatter, ConsoleFormatter)
    assert stream.getvalue().rstrip("\n").endswith(" WARNING  tests.setup slow ms=12")


def test_calling_again_replaces_the_handler_instead_of_stacking() -> None:
    """A second call leaves one handler of ours, and only the new stream receives records."""
    first, second = io.StringIO(), io.StringIO()
    setup_logging(stream=first)
    replacement = setup_logging(stream=second)
    logging.getLogger("tests.setup").error("once")
    assert ours(logging.getLogger()) == [replacement]
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_the_replaced_handler_is_removed_but_its_stream_stays_open() -> None:
    """The old handler leaves the root logger; the caller's stream is not closed with it."""
    stream = io.StringIO()
    old = setup_logging(stream=stream)
    setup_logging(stream=io.StringIO())
    assert old not in logging.getLogger().handlers
    assert not stream.closed


def test_handlers_installed_by_others_are_kept(restore_root_logger: logging.Logger) -> None:
    """Another component's root handler survives setup_logging and still gets records."""
    theirs = io.StringIO()
    other = logging.StreamHandler(theirs)
    restore_root_logger.addHandler(other)
    setup_logging(stream=io.StringIO())
    setup_logging(stream=io.StringIO())
    logging.getLogger("tests.setup").warning("shared")
    assert other in restore_root_logger.handlers
    assert "shared" in theirs.getvalue()


@pytest.mark.parametrize(("level", "expected"), [("debug", 10), ("Warning", 30), (40, 40)])
def test_level_names_in_any_case_and_numbers_set_the_root_level(
    level: str | int, expected: int
) -> None:
    """The root level follows the given name (any case) or number."""
    setup_logging(level=level, stream=io.StringIO())
    assert logging.getLogger().level == expected


def test_records_below_the_level_are_not_written() -> None:
    """With level WARNING, INFO records are dropped and WARNING ones written."""
    stream = io.StringIO()
    setup_logging(level="WARNING", stream=stream)
    logger = logging.getLogger("tests.setup")
    logger.info("dropped")
    logger.warning("kept")
    assert [orjson.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["kept"]


def test_an_unknown_level_raises_and_changes_nothing(
    restore_root_logger: logging.Logger,
) -> None:
    """An unknown level name raises ValueError before any handler or level changes."""
    before = (list(restore_root_logger.handlers), restore_root_logger.level)
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging(level="LOUD")
    assert (list(restore_root_logger.handlers), restore_root_logger.level) == before


def test_the_default_stream_is_standard_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a stream, lines go to sys.stderr and nothing to stdout."""
    handler = setup_logging()
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is sys.stderr
    logging.getLogger("tests.setup").warning("to stderr")
    captured = capsys.readouterr()
    assert orjson.loads(captured.err)["message"] == "to stderr"
    assert captured.out == ""


def test_context_and_exceptions_flow_through_the_installed_handler() -> None:
    """Correlation id, LogContext, Kafka fields and tracebacks all reach the stream."""
    stream = io.StringIO()
    setup_logging(stream=stream)
    set_correlation_id("c-9")
    with LogContext(actor="consumer"), KafkaLogContext("orders", 1, 8):
        try:
            raise TimeoutError("broker slow")
        except TimeoutError:
            logging.getLogger("tests.setup").exception("gave up")
    line = orjson.loads(stream.getvalue())
    assert (line["correlation_id"], line["actor"], line["offset"]) == ("c-9", "consumer", 8)
    assert "TimeoutError: broker slow" in line["exception"]
