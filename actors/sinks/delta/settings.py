"""What a Delta sink writes where: validated once, before anything starts.

Every setting has a safe default and a range; a bad one raises `ConfigurationError`
naming the key (`delta.<key>`) and what is wrong. The keys are those of the `[delta]`
table of the configuration file (see `DeltaSinkSettings.from_mapping`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from actors.messages import Record
from actors.sinks.delta.columns import COLUMN_TYPES, METADATA_COLUMNS
from core.errors import ConfigurationError

__all__ = ["DeltaSinkSettings", "ExtraColumns"]

ExtraColumns = Callable[[Record], Mapping[str, object]]
"""`extra(record)` -> {column: JSON-like value}; must be deterministic (see the sink)."""

_REMOTE_SCHEMES: Final = ("abfss://", "abfs://", "az://", "azure://")
_MIN_VACUUM_HOURS: Final = 168
_MAX_CONFLICT_RETRIES: Final = 100


@dataclass(frozen=True)
class DeltaSinkSettings:
    """One Delta table and how records become its rows."""

    table: str
    """A local directory, or `abfss://container@account.dfs.core.windows.net/path`
    (OneLake: `abfss://workspace@onelake.dfs.fabric.microsoft.com/item/Tables/name`)
    or `az://container/path`."""
    value: Literal["raw", "json"] = "raw"
    """`raw`: one binary `value` column; `json`: one column per field of `columns`."""
    columns: Mapping[str, str] = field(default_factory=dict)
    """JSON field -> column type (see actors.sinks.delta.columns); for `value = "json"`."""
    required: tuple[str, ...] = ()
    """JSON fields that must be present and not null; a record without one fails alone."""
    partition_by: tuple[str, ...] = ()
    """Columns the table is partitioned by when this sink creates it."""
    extra_columns: ExtraColumns | None = None
    """A function of the record giving more columns (declared in `extra_column_types`)."""
    extra_column_types: Mapping[str, str] = field(default_factory=dict)
    storage_options: Mapping[str, str] = field(default_factory=dict)
    """Passed to delta-rs's object store as they are (e.g. an Azurite endpoint)."""
    use_credential_provider: bool = True
    """Remote tables: send a storage token of the process's Azure credential."""
    conflict_retries: int = 5
    """Commits lost to a concurrent writer tried again (0-100) before the batch fails."""
    compact_every_commits: int = 0
    """Compact small files after this many commits of this process (0: never)."""
    compact_interval_s: float = 0.0
    """...or when this long passed since the last compaction (0: never)."""
    vacuum_retention_hours: int | None = None
    """After a compaction, delete files unreferenced for this long (>= 168; None: never)."""

    def __post_init__(self) -> None:
        if not self.table:
            raise _bad("table", "is required: a local directory or an abfss:// / az:// URI")
        if self.value not in ("raw", "json"):
            raise _bad("value", f"must be 'raw' or 'json', got {self.value!r}")
        if self.value == "json" and not self.columns:
            raise _bad("columns", "value = 'json' needs at least one column: field = 'type'")
        if self.value == "raw" and (self.columns or self.required):
            raise _bad("columns", "columns and required are for value = 'json'")
        _check_types("columns", self.columns)
        _check_types("extra_column_types", self.extra_column_types)
        names = [*METADATA_COLUMNS, *self.value_columns, *self.extra_column_types]
        clash = sorted({name for name in names if names.count(name) > 1})
        if clash:
            raise _bad(
                "columns",
                f"column names used twice: {clash} (the first columns are "
                f"{list(METADATA_COLUMNS)})",
            )
        missing = [name for name in self.required if name not in self.columns]
        if missing:
            raise _bad("required", f"{missing} are not in delta.columns")
        unknown = [name for name in self.partition_by if name not in names]
        if unknown:
            raise _bad("partition_by", f"{unknown} are not columns of the table: {names}")
        if bool(self.extra_columns) != bool(self.extra_column_types):
            raise _bad("extra_columns", "set both extra_columns and extra_column_types, or neither")
        if not 0 <= self.conflict_retries <= _MAX_CONFLICT_RETRIES:
            raise _bad("conflict_retries", f"must be 0-{_MAX_CONFLICT_RETRIES}")
        if self.compact_every_commits < 0 or not self.compact_interval_s >= 0:
            raise _bad("compact_every_commits", "compaction settings must be >= 0 (0: off)")
        if self.vacuum_retention_hours is not None and (
            self.vacuum_retention_hours < _MIN_VACUUM_HOURS
        ):
            raise _bad(
                "vacuum_retention_hours",
                f"must be >= {_MIN_VACUUM_HOURS} (readers and time travel need old files)",
            )

    @property
    def is_remote(self) -> bool:
        """True for a table on Azure Storage / OneLake."""
        return self.table.startswith(_REMOTE_SCHEMES)

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns that hold the value: `value`, or the JSON fields."""
        return tuple(self.columns) if self.value == "json" else ("value",)

    @property
    def compaction_enabled(self) -> bool:
        """True when either compaction trigger is set."""
        return self.compact_every_commits > 0 or self.compact_interval_s > 0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> DeltaSinkSettings:
        """Settings from the `[delta]` table of a configuration file.

        `extra_columns` is given there as `package.module:function` and imported here.
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise _bad(unknown[0], f"unknown key; known keys: {sorted(known)}")
        values = dict(raw)
        for key in ("required", "partition_by"):
            if key in values:
                values[key] = tuple(values[key])
        extra = values.get("extra_columns")
        if isinstance(extra, str):
            values["extra_columns"] = _import_function(extra)
        return cls(**values)


def _check_types(key: str, columns: Mapping[str, str]) -> None:
    for name, type_name in columns.items():
        if not name or not isinstance(name, str):
            raise _bad(key, f"column names must be non-empty strings, got {name!r}")
        if type_name not in COLUMN_TYPES:
            raise _bad(key, f"{name!r} has type {type_name!r}; known: {sorted(COLUMN_TYPES)}")


def _import_function(target: str) -> ExtraColumns:
    module_name, colon, attribute = target.partition(":")
    if not (module_name and colon and attribute):
        raise _bad("extra_columns", f"{target!r}: expected 'package.module:function'")
    try:
        found: object = importlib.import_module(module_name)
        for name in attribute.split("."):
            found = getattr(found, name)
    except (ImportError, AttributeError) as exc:
        raise _bad("extra_columns", f"{target!r} cannot be loaded: {exc}") from None
    if not callable(found):
        raise _bad("extra_columns", f"{target!r} is not callable")
    function: ExtraColumns = found
    return function


def _bad(key: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"delta.{key} {problem}", context={"key": f"delta.{key}"})
