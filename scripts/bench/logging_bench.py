"""One log record through stdlib logging: our JSONFormatter vs python-json-logger, structlog
and the stdlib plain-text line.

Every variant runs the same call, `logger.info("record processed", extra=<5 fields>)`,
through its own logger and StreamHandler, all writing to one stream that discards what
it is given: the figures are the whole stdlib path (record creation, handler lock,
formatting, the write call) without I/O. Each variant writes what its library offers for
the same content: time, level, logger name, message and the 5 fields (the plain-text
line leaves the fields out; it is the cost ceiling the issue sets, not a JSON peer).

* ours: `core.logging.JSONFormatter`, what `setup_logging()` installs; and with a
  `ContextFilter`, what a handler that formats later (queue, log shipper) adds.
* python-json-logger: its orjson formatter, and its default (stdlib json) formatter.
* structlog: `ProcessorFormatter` with its `JSONRenderer`, for records from stdlib
  loggers (`foreign_pre_chain`: level, logger name, ISO timestamp, the extra fields).
"""

from __future__ import annotations

import asyncio
import io
import logging

import structlog
from pythonjsonlogger.json import JsonFormatter
from pythonjsonlogger.orjson import OrjsonFormatter

from core.logging import ContextFilter, JSONFormatter
from scripts.bench.report import Section, Target, micro_section
from scripts.bench.timing import Case, interleaved

__all__ = ["EXTRA", "NullStream", "run"]

EXTRA = {
    "topic": "orders",
    "partition": 3,
    "offset": 1_234_567,
    "consumer_group": "billing",
    "duration_ms": 1.25,
}
PLAIN_TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
STATEMENT = 'info("record processed", extra=extra)'


class NullStream(io.TextIOBase):
    """A text stream that accepts every write and keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)


def structlog_formatter() -> logging.Formatter:
    """structlog's JSON renderer for records logged through stdlib loggers."""
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ExtraAdder(),
        ],
    )


def formatters() -> list[tuple[str, str, logging.Formatter, bool]]:
    """(name, role, formatter, with ContextFilter) for every variant."""
    return [
        ("stdlib plain-text line", "baseline", logging.Formatter(PLAIN_TEXT), False),
        ("ours: JSONFormatter", "ours", JSONFormatter(), False),
        ("ours: JSONFormatter + ContextFilter", "variant", JSONFormatter(), True),
        ("python-json-logger + orjson", "peer", OrjsonFormatter(PLAIN_TEXT), False),
        ("python-json-logger (json)", "peer", JsonFormatter(PLAIN_TEXT), False),
        ("structlog JSONRenderer", "peer", structlog_formatter(), False),
    ]


def logger_for(
    name: str, formatter: logging.Formatter, stream: NullStream, *, context: bool
) -> logging.Logger:
    """A logger of its own writing through `formatter` into `stream`, not propagating."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    if context:
        handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"bench.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def cases() -> list[Case]:
    """One case per formatter, all sharing one NullStream."""
    stream = NullStream()
    built = []
    for index, (name, role, formatter, context) in enumerate(formatters()):
        logger = logger_for(f"v{index}", formatter, stream, context=context)
        built.append(
            Case(name, role, STATEMENT, {"info": logger.info, "extra": EXTRA})  # type: ignore[arg-type]
        )
    return built


def run(number: int, repeats: int, runner: asyncio.Runner) -> list[Section]:
    """The logging benchmark; ours is held to the plain-text line measured in the same run."""
    timings = interleaved(cases(), number=number, repeats=repeats, runner=runner)
    plain = next(t for t in timings if t.case.role == "baseline")
    section = micro_section(
        "logging-json-record",
        "JSON log record through stdlib logging, 5 extra fields",
        timings,
        target=Target(plain.min),
        what="JSON log record, 5 extra fields (target: the plain-text line)",
        notes=[
            f"{number:,} records per round; every variant's handler writes to the same "
            "discarding stream.",
        ],
    )
    return [section]
