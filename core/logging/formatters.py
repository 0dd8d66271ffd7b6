"""JSON and console formatters sharing one way of turning a record into fields.

Fields, in output order (a later source wins on a name clash): `correlation_id`, then
LogContext fields, then the Kafka record's `topic`, `partition`, `offset`,
`consumer_group`, then the record's own `extra=` fields. A field named like an output key
of the formatter itself (timestamp, level, logger, message, exception, stack) is written
as `field_<name>` instead of overwriting it. Secret-looking fields are masked as
core.logging.masking documents, in both formatters.

Cost per record is that of a stdlib plain-text line through the same handler, or less
(scripts/bench/bench_logging.py measures both):
extras are looked for only past the attributes every LogRecord has, the decision for each
field name (skip, keep, rename, mask) is cached per formatter, LogContext fields are
rendered once when the context is entered, timestamps reuse the formatted second, plain
scalar values are not copied, and the JSON is one `orjson.dumps` call. Tracebacks are
rendered by core.logging.tracebacks: the standard library's text without 3.11's carets,
whose computation costs more than a supervisor restart.

Every record's fields pass through core.logging.secret_values.redact_value before they
are encoded, so a registered secret value is hidden in fields too, not only in messages
and tracebacks.

A line is at most `max_line_bytes` UTF-8 bytes (default `DEFAULT_MAX_LINE_BYTES`, 64 KiB):
a 5 MB exception message must not become a 5 MB line in every sink and buffer. A line
over the limit is rebuilt with each long text field cut in its middle, keeping its start
and its end (a traceback's end names the exception) around a marker saying how many
characters were cut, and a `log_truncated_bytes` field giving the original size; if
that is still too long, only the timestamp, level, logger, message and exception are
kept, cut harder. Lines within the limit pay one length comparison.
"""

from __future__ import annotations

import logging
import re
from itertools import islice
from types import TracebackType
from typing import Any, Final, TypeAlias

import orjson

from core.logging.context import state_var
from core.logging.encoding import dumps, orjson_default
from core.logging.fields import OUTPUT_KEYS, PLAIN_SCALARS, output_name
from core.logging.filters import CONTEXT_ATTRIBUTE
from core.logging.masking import MASK, mask_text, mask_value
from core.logging.safe_text import safe_str
from core.logging.secret_values import redact_value
from core.logging.timestamps import MILLISECOND_SUFFIXES, UtcTimestamps
from core.logging.tracebacks import format_exception

__all__ = ["DEFAULT_MAX_LINE_BYTES", "ConsoleFormatter", "JSONFormatter"]

DEFAULT_MAX_LINE_BYTES: Final = 64 * 1024
"""The longest line a formatter writes, in UTF-8 bytes, unless told otherwise."""

_MIN_LINE_BYTES: Final = 1024
_MAX_CHAR_BYTES: Final = 6
"""The most bytes one character can take in a line: a JSON escape such as \\u0000."""

_FRESH_RECORD_ATTRIBUTES: Final = tuple(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
)
_RECORD_INIT_SIZE: Final = len(_FRESH_RECORD_ATTRIBUTES)
"""LogRecord.__init__ sets this many attributes before `extra=` (or makeLogRecord's dict)
adds any, so extras are looked for only after them. A record subclass that sets its own
attributes *before* calling LogRecord.__init__ would have those skipped."""

_RECORD_ATTRIBUTES: Final = frozenset(_FRESH_RECORD_ATTRIBUTES) | {
    "message",
    "asctime",
    CONTEXT_ATTRIBUTE,
}
"""Attributes every LogRecord has (or a stdlib formatter adds): not extra fields."""

_CACHE_LIMIT: Final = 4096

_ExcInfo: TypeAlias = (
    "tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]"
)

_BARE_TEXT: Final = re.compile(r'[^\s="\\]+')


class _RecordDictFormatter(logging.Formatter):
    """Turns a record into the dict both formatters write, secrets masked.

    Extra field names seen before and found readable are cached with their output name,
    so the usual field costs one dict lookup and a type check; new and secret names take
    the slower path. LogContext fields arrive already rendered (see core.logging.fields).
    """

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        super().__init__()
        if max_line_bytes < _MIN_LINE_BYTES:
            raise ValueError(
                f"max_line_bytes must be at least {_MIN_LINE_BYTES}, got {max_line_bytes}"
            )
        self.max_line_bytes = max_line_bytes
        self._timestamps = UtcTimestamps()
        self._extra_names: dict[object, str] = {}
        """Extra field -> output name, or "" for a LogRecord attribute to skip."""
        self._masked_templates: dict[str, str] = {}
        """Message without arguments -> its masked text (most messages are constants)."""

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """Return the record's output keys and fields, in output order, secrets masked."""
        # The hot path of every log call: the timestamp cache and getMessage's common case
        # (a str message without arguments) are inlined on purpose.
        second = int(record.created)
        cached_second, prefix = self._timestamps.cached
        if second != cached_second:
            prefix = self._timestamps.prefix(second)
        message = record.msg
        if type(message) is str and not record.args:
            masked = self._masked_templates.get(message)
            if masked is None:
                masked = mask_text(message)
                if len(self._masked_templates) < _CACHE_LIMIT:
                    self._masked_templates[message] = masked
        else:
            try:
                masked = mask_text(record.getMessage())
            except Exception as exc:
                masked = mask_text(_unformattable_message(record, exc))
        out: dict[str, Any] = {
            "timestamp": prefix + MILLISECOND_SUFFIXES[int(record.msecs) % 1000],
            "level": record.levelname,
            "logger": record.name,
            "message": masked,
        }
        attributes = record.__dict__
        state = attributes.get(CONTEXT_ATTRIBUTE)
        correlation_id, context_fields, kafka = state_var.get() if state is None else state
        if correlation_id is not None:
            out["correlation_id"] = correlation_id
        if context_fields:
            out.update(context_fields)
        if kafka is not None:
            out["topic"] = kafka.topic
            out["partition"] = kafka.partition
            out["offset"] = kafka.offset
            if kafka.consumer_group is not None:
                out["consumer_group"] = kafka.consumer_group
        extra_names = self._extra_names
        for key, value in islice(attributes.items(), _RECORD_INIT_SIZE, None):
            name = extra_names.get(key)
            if name:
                out[name] = value if type(value) in PLAIN_SCALARS else mask_value(value)
            elif name is None:
                if key in _RECORD_ATTRIBUTES:
                    extra_names[key] = ""
                else:
                    self._add_new_extra(key, value, out)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = mask_text(record.exc_text)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return out

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line (see the subclass), bounded and secrets redacted."""
        out = redact_value(self.to_dict(record))
        line = self.render(out)
        limit = self.max_line_bytes
        if len(line) * 4 > limit:  # may be over the limit: measure exactly
            size = len(line.encode("utf-8", "surrogatepass"))
            if size > limit:
                return self._shortened(out, size)
        return line

    def render(self, out: dict[str, Any]) -> str:
        """The text of one record's fields; each formatter writes its own layout."""
        raise NotImplementedError

    def _shortened(self, out: dict[str, Any], size: int) -> str:
        """The record within `max_line_bytes`: long fields cut, else only the essentials."""
        limit = self.max_line_bytes
        field_chars = limit // (4 * _MAX_CHAR_BYTES)
        shrunk = {name: _cut_field(value, field_chars) for name, value in out.items()}
        shrunk["log_truncated_bytes"] = size
        line = self.render(shrunk)
        if len(line.encode("utf-8", "surrogatepass")) <= limit:
            return line
        essentials: dict[str, Any] = {
            name: _cut_field(out[name], limit // (4 * _MAX_CHAR_BYTES))
            for name in ("timestamp", "level", "logger", "message", "exception")
            if name in out
        }
        essentials["log_truncated_bytes"] = size
        return self.render(essentials)

    def formatException(self, ei: _ExcInfo) -> str:  # noqa: N802 (logging's name)
        """The traceback text without 3.11's carets (see core.logging.tracebacks)."""
        exc, tb = ei[1], ei[2]
        if exc is None:
            return super().formatException(ei)
        try:
            return format_exception(exc, tb)
        except Exception:  # an exception too odd for the fast path: the stdlib's text
            return super().formatException(ei)

    def _add_new_extra(self, key: object, value: Any, out: dict[str, Any]) -> None:
        """Add an extra field whose name is not cached as readable; cache it if it is."""
        name, secret = output_name(key)
        if secret:
            out[name] = MASK
            return
        if len(self._extra_names) < _CACHE_LIMIT:
            self._extra_names[key] = name
        out[name] = value if type(value) in PLAIN_SCALARS else mask_value(value)


class JSONFormatter(_RecordDictFormatter):
    """One JSON object per record, on one line.

    Keys: timestamp (UTC, milliseconds, "Z"), level, logger, message, the fields described
    in the module docstring, then `exception` (the traceback as core.logging.tracebacks
    renders it, masked like messages) with exc_info and `stack` with stack_info. Any extra
    value yields valid JSON (see core.logging.encoding).
    """

    def render(self, out: dict[str, Any]) -> str:
        """Return the fields as a single line of JSON (no trailing newline)."""
        try:
            return orjson.dumps(out, default=orjson_default).decode()
        except TypeError:
            return dumps(out)


class ConsoleFormatter(_RecordDictFormatter):
    """One human-readable line: `timestamp LEVEL logger message key=value ...`.

    Values that are bare words print as they are; other strings and every non-string
    value print as JSON. A traceback or stack, when present, follows on the next lines.
    """

    def render(self, out: dict[str, Any]) -> str:
        """Return the fields as one line of text, plus any traceback lines."""
        exception = out.get("exception")
        stack = out.get("stack")
        head = f"{out['timestamp']} {out['level']:<8} {out['logger']} "
        parts = [head + out["message"]]
        parts.extend(
            f"{name}={_render(value)}"
            for name, value in out.items()
            if name not in OUTPUT_KEYS  # placed by the layout; fields never clash with them
        )
        text = " ".join(parts)
        if exception is not None:
            text = f"{text}\n{exception}"
        if stack is not None:
            text = f"{text}\n{stack}"
        return text


def _unformattable_message(record: logging.LogRecord, problem: Exception) -> str:
    """Describe a message whose arguments do not fit its format, instead of failing."""
    return (
        f"{safe_str(record.msg)} (arguments {safe_str(record.args)} "
        f"do not fit: {safe_str(problem)})"
    )


def _cut_field(value: Any, max_chars: int) -> Any:
    """`value` with its middle cut out when it is longer than `max_chars` as text.

    A container is rendered as JSON, then cut like a string. Secrets were redacted
    before, so a cut cannot leave half of one.
    """
    if type(value) is not str:
        if type(value) in PLAIN_SCALARS:
            return value
        value = dumps(value)
    if len(value) <= max_chars:
        return value
    marker = f" …[{len(value) - max_chars} characters cut]… "
    keep = max(max_chars - len(marker), 0)
    head = keep // 2
    return value[:head] + marker + value[len(value) - (keep - head) :]


def _render(value: Any) -> str:
    """Render a field value for the console: bare words as they are, the rest as JSON."""
    if type(value) is str and _BARE_TEXT.fullmatch(value):
        return value
    return dumps(value)
