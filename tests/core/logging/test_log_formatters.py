"""JSONFormatter and ConsoleFormatter: the fields they write and how odd input is survived."""

from __future__ import annotations

import dataclasses
import logging
import math
from datetime import UTC, datetime

import orjson
from log_capture import CapturedLog

from core.logging import (
    MASK,
    ConsoleFormatter,
    ContextFilter,
    JSONFormatter,
    KafkaLogContext,
    LogContext,
    set_correlation_id,
)


def json_log() -> CapturedLog:
    """A logger writing JSON lines into memory."""
    return CapturedLog(JSONFormatter())


class Unprintable:
    """An object whose str() fails, as some proxies' do."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        return "<Unprintable>"


class Hopeless:
    """An object whose str() and repr() both fail."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@dataclasses.dataclass
class DatabaseSettings:
    """A dataclass with a secret field, logged whole by careless code."""

    host: str
    password: str


def test_json_writes_level_logger_and_formatted_message() -> None:
    """The output keys carry the record's level name, logger name and %-formatted message."""
    log = CapturedLog(JSONFormatter(), name="orders.consumer")
    log.logger.warning("lag is %d records on %s", 42, "orders-3")
    line = log.last()
    assert line["level"] == "WARNING"
    assert line["logger"] == "orders.consumer"
    assert line["message"] == "lag is 42 records on orders-3"


def test_json_timestamp_is_utc_iso8601_with_milliseconds_of_the_record() -> None:
    """The timestamp is the record's creation time in UTC, to the millisecond, ending in Z."""
    formatter = JSONFormatter()
    for created in (0.0, 1_700_000_000.9995, 1_700_000_001.0, 1_700_000_001.25):
        record = logging.makeLogRecord({"msg": "tick", "created": created})
        record.msecs = math.floor((created - int(created)) * 1000)
        timestamp = orjson.loads(formatter.format(record))["timestamp"]
        expected = datetime.fromtimestamp(int(created), UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert timestamp == f"{expected}.{int(record.msecs):03d}Z"
        assert datetime.fromisoformat(timestamp).tzinfo == UTC


def test_json_keeps_every_extra_field_in_the_order_given() -> None:
    """extra= fields follow the output keys, with their JSON types and in call order."""
    log = json_log()
    log.logger.info("done", extra={"zeta": 1, "alpha": 2.5, "flag": True, "none": None})
    line = log.last()
    assert list(line)[-4:] == ["zeta", "alpha", "flag", "none"]
    assert (line["zeta"], line["alpha"], line["flag"], line["none"]) == (1, 2.5, True, None)


def test_json_adds_correlation_id_only_when_one_is_set() -> None:
    """correlation_id appears once set, and is absent from records logged before."""
    log = json_log()
    log.logger.info("before")
    set_correlation_id("req-7")
    log.logger.info("after")
    before, after = log.records()
    assert "correlation_id" not in before
    assert after["correlation_id"] == "req-7"


def test_json_adds_context_then_kafka_then_extra_fields_later_winning() -> None:
    """Context, Kafka and extra fields all appear; on a clash the extra field wins."""
    log = json_log()
    with LogContext(actor="consumer", topic="from-context"), KafkaLogContext("orders", 2, 9):
        log.logger.info("handled", extra={"actor": "from-extra"})
    line = log.last()
    assert line["actor"] == "from-extra"
    assert (line["topic"], line["partition"], line["offset"]) == ("orders", 2, 9)


def test_json_renames_fields_that_clash_with_its_own_keys() -> None:
    """An extra named "level" or "timestamp" is kept as field_<name> without clobbering."""
    log = json_log()
    log.logger.error("x", extra={"level": "custom", "timestamp": 5, "logger": "other"})
    line = log.last()
    assert line["level"] == "ERROR"
    assert line["logger"] == "tests.capture"
    assert (line["field_level"], line["field_timestamp"], line["field_logger"]) == (
        "custom",
        5,
        "other",
    )


def test_json_includes_the_traceback_when_exc_info_is_given() -> None:
    """logger.exception adds an `exception` key with the traceback and the error text."""
    log = json_log()
    try:
        raise ValueError("bad offset")
    except ValueError:
        log.logger.exception("failed")
    exception = log.last()["exception"]
    assert exception.startswith("Traceback (most recent call last):")
    assert "ValueError: bad offset" in exception


def test_json_masks_credentials_inside_the_traceback() -> None:
    """A connection string quoted in an exception message is masked in `exception`."""
    log = json_log()
    try:
        raise ConnectionError("cannot use Endpoint=sb://x/;SharedAccessKey=c2VjcmV0;")
    except ConnectionError:
        log.logger.exception("failed")
    assert "c2VjcmV0" not in log.text
    assert "SharedAccessKey=***" in log.last()["exception"]


def test_json_includes_the_stack_when_stack_info_is_requested() -> None:
    """stack_info=True adds a `stack` key naming this test function."""
    log = json_log()
    log.logger.info("where", stack_info=True)
    assert "test_json_includes_the_stack_when_stack_info_is_requested" in log.last()["stack"]


def test_json_renders_values_orjson_cannot_encode() -> None:
    """Objects, bytes, sets, huge ints, NaN, infinity and lone surrogates still give JSON."""
    log = json_log()
    extras = {
        "obj": Unprintable(),
        "hopeless": Hopeless(),
        "raw": b"ok\xff",
        "ids": {7},
        "huge": 2**80,
        "nan": math.nan,
        "inf": -math.inf,
        "broken": "a\ud800b",
    }
    log.logger.info("odd", extra=extras)
    line = log.last()
    assert line["obj"] == "<Unprintable>"
    assert line["hopeless"] == "<unprintable Hopeless>"
    assert line["raw"] == "ok\ufffd"
    assert line["ids"] == [7]
    assert line["huge"] == str(2**80)
    assert line["nan"] is None
    assert line["inf"] is None
    assert line["broken"] == "a\\ud800b"


def test_json_turns_non_string_keys_of_nested_dicts_into_strings() -> None:
    """Nested dicts keyed by ints, tuples or None are written with str() keys."""
    log = json_log()
    log.logger.info("keys", extra={"by_partition": {0: "a", (1, 2): "b", None: "c"}})
    assert log.last()["by_partition"] == {"0": "a", "(1, 2)": "b", "None": "c"}


def test_json_masks_secret_fields_at_any_depth_and_inside_dataclasses() -> None:
    """Secret-named values are "***" at top level, nested in dicts/lists and in dataclasses."""
    log = json_log()
    log.logger.info(
        "config",
        extra={
            "password": "hunter2",
            "settings": {"db": [{"user": "app", "api_token": "t0k3n"}]},
            "database": DatabaseSettings(host="db.local", password="pa55"),
        },
    )
    line = log.last()
    assert line["password"] == MASK
    assert line["settings"] == {"db": [{"user": "app", "api_token": MASK}]}
    assert line["database"] == {"host": "db.local", "password": MASK}
    assert not any(secret in log.text for secret in ("hunter2", "t0k3n", "pa55"))


def test_json_does_not_mutate_the_values_it_masks() -> None:
    """Masking builds copies: the caller's dict still holds its secret afterwards."""
    settings = {"client_secret": "s3", "nested": {"token": "t"}}
    json_log().logger.info("config", extra={"settings": settings})
    assert settings == {"client_secret": "s3", "nested": {"token": "t"}}


def test_json_describes_a_message_whose_arguments_do_not_fit() -> None:
    """A %-format/argument mismatch is written as a described message instead of raising."""
    record = logging.makeLogRecord({"msg": "%d records", "args": ("many",), "name": "x"})
    message = orjson.loads(JSONFormatter().format(record))["message"]
    assert message.startswith("%d records (arguments ('many',) do not fit:")


def test_json_output_is_one_line_whatever_the_text_holds() -> None:
    """Newlines and carriage returns in messages and fields are escaped, never raw."""
    log = json_log()
    log.logger.info("line one\nline two\r", extra={"note": "a\nb"})
    assert len(log.lines()) == 1
    assert log.last()["message"] == "line one\nline two\r"


def test_json_ignores_attributes_a_stdlib_formatter_left_on_the_record() -> None:
    """`message` and `asctime`, set by a stdlib formatter of another handler, are no fields."""
    record = logging.makeLogRecord({"msg": "shared", "name": "x", "levelname": "INFO"})
    logging.Formatter("%(asctime)s %(message)s").format(record)
    formatter = JSONFormatter()
    for _ in range(2):
        line = orjson.loads(formatter.format(record))
        assert "asctime" not in line
        assert line["message"] == "shared"


def test_json_prefers_the_context_snapshot_a_filter_attached() -> None:
    """With ContextFilter, the context at logging time wins over the context at formatting."""
    record = logging.makeLogRecord({"msg": "late", "name": "x", "levelname": "INFO"})
    with LogContext(stage="when-logged"):
        ContextFilter().filter(record)
    with LogContext(stage="when-formatted"):
        line = orjson.loads(JSONFormatter().format(record))
    assert line["stage"] == "when-logged"
    assert "core_log_context" not in line


def test_json_keeps_masking_when_more_names_and_messages_than_the_caches_hold() -> None:
    """Past the caches' limits, new field names and messages are still masked correctly."""
    log = json_log()
    for index in range(5000):
        message = f"call {index} with sig=abc{index}"
        log.logger.info(message, extra={f"field_{index}": index, f"token_{index}": "s"})
    last = log.last()
    assert last["field_4999"] == 4999
    assert last["token_4999"] == MASK
    assert last["message"] == "call 4999 with sig=***"


def test_console_writes_time_level_logger_message_then_fields() -> None:
    """The console line is `timestamp LEVEL logger message key=value ...`."""
    log = CapturedLog(ConsoleFormatter(), name="orders")
    with KafkaLogContext("orders", 1, 5, "billing"):
        log.logger.info("handled %s", "ok", extra={"duration_ms": 1.5})
    timestamp, level, *rest = log.lines()[0].split()
    assert datetime.fromisoformat(timestamp).tzinfo == UTC
    assert level == "INFO"
    assert rest == [
        "orders",
        "handled",
        "ok",
        "topic=orders",
        "partition=1",
        "offset=5",
        "consumer_group=billing",
        "duration_ms=1.5",
    ]


def test_console_quotes_text_with_spaces_and_writes_other_values_as_json() -> None:
    """Bare words print as-is; text with spaces is quoted; dicts, None and bools are JSON."""
    log = CapturedLog(ConsoleFormatter())
    log.logger.info("m", extra={"word": "ok", "text": "a b", "d": {"k": 1}, "n": None, "b": True})
    assert log.lines()[0].endswith(' word=ok text="a b" d={"k":1} n=null b=true')


def test_console_puts_the_traceback_on_the_following_lines() -> None:
    """With exc_info, the first line is the record and the traceback follows it."""
    log = CapturedLog(ConsoleFormatter())
    try:
        raise KeyError("missing")
    except KeyError:
        log.logger.exception("lookup failed")
    first, *following = log.lines()
    assert first.endswith("lookup failed")
    assert following[0] == "Traceback (most recent call last):"
    assert following[-1] == "KeyError: 'missing'"


def test_console_puts_the_stack_on_the_following_lines() -> None:
    """With stack_info, the stack follows the record line."""
    log = CapturedLog(ConsoleFormatter())
    log.logger.info("where", stack_info=True)
    first, second, *_ = log.lines()
    assert first.endswith("where")
    assert second == "Stack (most recent call last):"


def test_console_masks_secret_fields_and_message_credentials() -> None:
    """Secret fields and a bearer token in the message are masked on the console too."""
    log = CapturedLog(ConsoleFormatter())
    with LogContext(connection_string="Endpoint=sb://ns/;SharedAccessKey=abc"):
        log.logger.info("auth Bearer eyJhbGciOiJub25lIn0.e30.", extra={"password": "pw"})
    line = log.lines()[0]
    assert "connection_string=***" in line
    assert "password=***" in line
    assert "Bearer ***" in line
    assert "abc" not in line
    assert "eyJhbGciOiJub25lIn0" not in line
