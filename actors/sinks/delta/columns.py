"""The table's columns: the record's coordinates, then its value, then the user's extras.

Every table gets the same first columns, so a row always says where it came from:

    topic      string                  partition  integer (int32)
    offset     long (int64)            timestamp  timestamp (UTC, from the record's ms)
    key        binary                  headers    array<struct<key: string, value: binary>>

Headers are a list, not a map: Kafka allows a header name twice and keeps their order.

The value is either one `value` binary column (the bytes as consumed) or, when a JSON
schema is configured, one column per named top-level field of the JSON object. Field
types are a small fixed set whose conversion from JSON is exact (no silent rounding or
truncation); a value that does not convert fails its record, never the batch:

    string   a JSON string                    long     an integer in int64's range
    integer  an integer in int32's range      double   any JSON number
    boolean  true / false                     timestamp  an ISO-8601 string with offset
    json     any JSON value, kept as its JSON text (for nested objects and lists)

JSON fields not in the schema are ignored; missing fields are null unless listed as
required. Extra columns from the user's function use the same types.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

import orjson
import pyarrow as pa

__all__ = [
    "COLUMN_TYPES",
    "METADATA_COLUMNS",
    "ColumnError",
    "arrow_type",
    "convert",
    "metadata_schema",
]

METADATA_COLUMNS: Final[tuple[str, ...]] = (
    "topic",
    "partition",
    "offset",
    "timestamp",
    "key",
    "headers",
)

_HEADER_TYPE: Final = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
_TIMESTAMP_TYPE: Final = pa.timestamp("us", tz="UTC")
_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)


class ColumnError(ValueError):
    """A JSON value cannot become the column's type; names the column and what was found."""


def metadata_schema() -> list[pa.Field]:
    """The record-coordinate fields every table starts with."""
    return [
        pa.field("topic", pa.string()),
        pa.field("partition", pa.int32()),
        pa.field("offset", pa.int64()),
        pa.field("timestamp", _TIMESTAMP_TYPE),
        pa.field("key", pa.binary()),
        pa.field("headers", _HEADER_TYPE),
    ]


def _integer(low: int, high: int) -> Callable[[str, Any], object]:
    def to_integer(column: str, value: Any) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ColumnError(f"column {column!r} needs an integer, got {_shown(value)}")
        if not low <= value <= high:
            raise ColumnError(f"column {column!r}: {value} is outside [{low}, {high}]")
        return value

    return to_integer


def _string(column: str, value: Any) -> object:
    if not isinstance(value, str):
        raise ColumnError(f"column {column!r} needs a string, got {_shown(value)}")
    return value


def _double(column: str, value: Any) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ColumnError(f"column {column!r} needs a number, got {_shown(value)}")
    as_float = float(value)
    if not math.isfinite(as_float):
        raise ColumnError(f"column {column!r}: {value} is out of range for a double")
    return as_float


def _boolean(column: str, value: Any) -> object:
    if not isinstance(value, bool):
        raise ColumnError(f"column {column!r} needs true or false, got {_shown(value)}")
    return value


def _timestamp(column: str, value: Any) -> object:
    if not isinstance(value, str):
        raise ColumnError(f"column {column!r} needs an ISO-8601 string, got {_shown(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ColumnError(f"column {column!r}: {value!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise ColumnError(f"column {column!r}: {value!r} has no UTC offset")
    return parsed


def _json_text(column: str, value: Any) -> object:
    return orjson.dumps(value).decode()


COLUMN_TYPES: Final[Mapping[str, tuple[pa.DataType, Callable[[str, Any], object]]]] = {
    "string": (pa.string(), _string),
    "long": (pa.int64(), _integer(*_INT64)),
    "integer": (pa.int32(), _integer(*_INT32)),
    "double": (pa.float64(), _double),
    "boolean": (pa.bool_(), _boolean),
    "timestamp": (_TIMESTAMP_TYPE, _timestamp),
    "json": (pa.string(), _json_text),
}
"""Column type name -> (Arrow type, converter of a JSON value that raises ColumnError)."""


def arrow_type(type_name: str) -> pa.DataType:
    """The Arrow type of a configured column type name."""
    return COLUMN_TYPES[type_name][0]


def convert(column: str, type_name: str, value: Any) -> object:
    """`value` (decoded JSON, not None) as the column's Python value, or ColumnError."""
    return COLUMN_TYPES[type_name][1](column, value)


def _shown(value: Any) -> str:
    text = orjson.dumps(value).decode() if value is not None else "null"
    return f"{type(value).__name__} {text[:40]}"
