"""The allowed range of every number in the process configuration, declared beside the field.

A numeric field is declared with `ranged(default, low, high)`: the range lives in the
field's metadata, each table's `__post_init__` checks all of them with `check_ranges`,
and `render_config` prints them next to the values, so `check-config`'s output is the
reference. Every range is finite on both ends: NaN, infinities and absurd magnitudes
(`commit_interval_s = 1e308`, a `session_timeout_ms` beyond a Kafka int32) are refused
with a ConfigError naming the key before anything starts, instead of silently
switching a feature off or crashing deep inside a library. NaN fails every comparison,
so `low <= value <= high` refuses it without a special case.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from supervisor.pipeline.config_loader import ConfigError

__all__ = ["Range", "check_ranges", "range_of", "ranged"]

_RANGE: Final = "range"
N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class Range:
    """`low..high`, both inclusive unless `low_open` (then `(low, high]`); `unit` for the reader."""

    low: float
    high: float
    low_open: bool = False
    unit: str = ""

    def admits(self, value: float) -> bool:
        """`value` lies within the range (never true for NaN)."""
        if self.low_open:
            return self.low < value <= self.high
        return self.low <= value <= self.high

    def __str__(self) -> str:
        low, high = _number(self.low), _number(self.high)
        text = f"({low}, {high}]" if self.low_open else f"{low}..{high}"
        return f"{text} {self.unit}".rstrip()


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):_}"
    return repr(value)


def ranged(default: N, low: float, high: float, *, low_open: bool = False, unit: str = "") -> N:
    """A dataclass field with `default` whose values must lie in `low..high` (see Range)."""
    field: N = dataclasses.field(
        default=default, metadata={_RANGE: Range(low, high, low_open, unit)}
    )
    return field


def range_of(item: dataclasses.Field[Any]) -> Range | None:
    """The range declared for `item`, or None for a field that is not a ranged number."""
    found = item.metadata.get(_RANGE)
    return found if isinstance(found, Range) else None


def check_ranges(table: object, section: str) -> None:
    """Raise ConfigError naming `section.field` for the first value outside its range."""
    for item in dataclasses.fields(table):  # type: ignore[arg-type]
        allowed = range_of(item)
        value = getattr(table, item.name)
        if allowed is not None and not allowed.admits(value):
            raise ConfigError(f"{section}.{item.name}", f"got {value!r}; allowed: {allowed}")
