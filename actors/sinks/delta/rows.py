"""Turn one partition's records into Arrow columns, record by record.

A record whose value or extra columns cannot be converted becomes a `RecordFailure`
(PERMANENT); the other records of the batch still become rows. Decoding is a pure
function of the record and the settings, so a redelivered record fails the same way
again: that is why records at or below the table's recorded offset are still decoded
(see the sink: a failure must be reported on every delivery, or a crash between the
commit and the dead-letter produce would lose it).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import pyarrow as pa

from actors.messages import Record
from actors.sinks.delta.columns import ColumnError, arrow_type, convert, metadata_schema
from actors.sinks.delta.outcome import RecordFailure
from actors.sinks.delta.settings import DeltaSinkSettings
from core.errors import DeltaTableError, classify_exception
from core.types import ErrorCategory

__all__ = ["DecodedBatch", "RowDecoder", "table_schema"]

_US_PER_MS: Final = 1000


def table_schema(settings: DeltaSinkSettings) -> pa.Schema:
    """The Arrow schema of the table these settings describe."""
    fields = metadata_schema()
    if settings.value == "raw":
        fields.append(pa.field("value", pa.binary()))
    else:
        fields += [pa.field(name, arrow_type(kind)) for name, kind in settings.columns.items()]
    fields += [
        pa.field(name, arrow_type(kind)) for name, kind in settings.extra_column_types.items()
    ]
    return pa.schema(fields)


@dataclass(slots=True)
class DecodedBatch:
    """Rows of the records that decoded (in offset order), and the records that did not."""

    schema: pa.Schema
    offsets: list[int] = field(default_factory=list)
    columns: dict[str, list[Any]] = field(default_factory=dict)
    failed: list[RecordFailure] = field(default_factory=list)

    def rows_above(self, version: int) -> pa.Table | None:
        """The rows of records with an offset above `version`, or None if there are none."""
        start = bisect.bisect_right(self.offsets, version)
        if start == len(self.offsets):
            return None
        arrays = [
            pa.array(self.columns[column.name][start:], type=column.type) for column in self.schema
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def count_at_or_below(self, version: int) -> int:
        """How many decoded rows have an offset at or below `version` (already in the table)."""
        return bisect.bisect_right(self.offsets, version)


class RowDecoder:
    """Decodes records into the columns of `table_schema(settings)`."""

    def __init__(self, settings: DeltaSinkSettings) -> None:
        self._settings = settings
        self.schema = table_schema(settings)
        self._required = frozenset(settings.required)

    def decode(self, records: Sequence[Record]) -> DecodedBatch:
        """Every record as a row, or as a failure; records must be in offset order."""
        batch = DecodedBatch(self.schema, columns={name: [] for name in self.schema.names})
        columns = batch.columns
        for record in records:
            try:
                row = self._value_columns(record) | self._extra_columns(record)
            except ColumnError as exc:
                batch.failed.append(RecordFailure(record, _record_error(record, str(exc))))
                continue
            batch.offsets.append(record.offset)
            columns["topic"].append(record.topic)
            columns["partition"].append(record.partition)
            columns["offset"].append(record.offset)
            timestamp = record.timestamp
            if timestamp is not None and timestamp < 0:  # Kafka's -1: no timestamp
                timestamp = None
            columns["timestamp"].append(None if timestamp is None else timestamp * _US_PER_MS)
            columns["key"].append(record.key)
            columns["headers"].append(
                [{"key": name, "value": value} for name, value in record.headers]
            )
            for name, value in row.items():
                columns[name].append(value)
        return batch

    def _value_columns(self, record: Record) -> dict[str, object]:
        settings = self._settings
        if settings.value == "raw":
            return {"value": record.value}
        if record.value is None:
            raise ColumnError("the value is null, not a JSON object")
        try:
            document = orjson.loads(record.value)
        except orjson.JSONDecodeError as exc:
            raise ColumnError(f"the value is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ColumnError(f"the value is JSON {type(document).__name__}, not an object")
        row: dict[str, object] = {}
        for name, kind in settings.columns.items():
            value = document.get(name)
            if value is None:
                if name in self._required:
                    raise ColumnError(f"required field {name!r} is missing or null")
                row[name] = None
            else:
                row[name] = convert(name, kind, value)
        return row

    def _extra_columns(self, record: Record) -> dict[str, object]:
        function = self._settings.extra_columns
        if function is None:
            return {}
        try:
            values = function(record)
        except Exception as exc:
            if classify_exception(exc) is not ErrorCategory.PERMANENT:
                raise  # a failure a retry may fix fails the batch, to be tried again
            raise ColumnError(f"extra_columns failed: {type(exc).__name__}: {exc}") from exc
        row: dict[str, object] = {}
        for name, kind in self._settings.extra_column_types.items():
            value = values.get(name)
            row[name] = None if value is None else convert(name, kind, value)
        return row


def _record_error(record: Record, problem: str) -> DeltaTableError:
    where = f"{record.topic}[{record.partition}]@{record.offset}"
    return DeltaTableError(
        f"record {where} cannot become a row: {problem}",
        category=ErrorCategory.PERMANENT,
        context={"topic": record.topic, "partition": record.partition, "offset": record.offset},
    )
