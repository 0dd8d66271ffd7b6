"""`Record` behaves as the frozen dataclass it replaced: fields, equality, hash, repr, matching."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.messages import Record

FIELDS = (
    "topic",
    "partition",
    "offset",
    "key",
    "value",
    "headers",
    "timestamp",
    "attempt",
    "origin",
)


@dataclasses.dataclass(frozen=True)
class FrozenRecord:
    """The reference: what `Record` was, a frozen dataclass with the same fields."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int | None = None
    attempt: int = 0
    origin: tuple[str, int, int] | None = None


records = st.tuples(
    st.text(max_size=8),
    st.integers(0, 64),
    st.integers(0, 2**63 - 1),
    st.none() | st.binary(max_size=8),
    st.none() | st.binary(max_size=16),
    st.lists(st.tuples(st.text(max_size=4), st.binary(max_size=4)), max_size=3).map(tuple),
    st.none() | st.integers(0, 2**41),
    st.integers(0, 9),
    st.none() | st.tuples(st.text(max_size=8), st.integers(0, 64), st.integers(0, 2**63 - 1)),
)


@given(first=records, second=records)
def test_record_agrees_with_the_frozen_dataclass_on_everything_observable(
    first: tuple[Any, ...], second: tuple[Any, ...]
) -> None:
    """For any two records: the fields, equality, hash equality and repr (up to the class
    name) are what the frozen dataclass gives."""
    ours, reference = Record(*first), FrozenRecord(*first)
    assert tuple(getattr(ours, name) for name in FIELDS) == first
    assert repr(ours) == repr(reference).replace("FrozenRecord(", "Record(", 1)
    assert (ours == Record(*second)) == (reference == FrozenRecord(*second))
    assert hash(ours) == hash(Record(*first))


def test_the_defaults_are_no_headers_and_no_timestamp() -> None:
    """Headers and timestamp may be left out, by position or by name."""
    record = Record(topic="t", partition=1, offset=2, key=None, value=b"v")
    assert (record.headers, record.timestamp) == ((), None)


def test_a_record_never_retried_is_its_own_origin_at_attempt_0() -> None:
    """Without retry tiers a record's original coordinates are its own; from a tier, the
    source's."""
    record = Record("orders", 1, 2, None, b"v")
    assert (record.attempt, record.original_topic, record.original_partition) == (0, "orders", 1)
    assert record.original_offset == 2
    retried = record.replace(topic="orders.retry.5m", offset=9, attempt=1, origin=("orders", 1, 2))
    assert (retried.original_topic, retried.original_offset, retried.attempt) == ("orders", 2, 1)


@pytest.mark.parametrize("name", FIELDS)
def test_a_record_field_can_be_neither_assigned_nor_deleted(name: str) -> None:
    """Every field refuses assignment and deletion as a frozen dataclass does."""
    record = Record("t", 0, 0, None, b"v")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, name, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(record, name)


def test_a_record_takes_no_attribute_besides_its_fields() -> None:
    """There is no instance dict to put stray attributes in (handlers get what was consumed)."""
    record = Record("t", 0, 0, None, b"v")
    with pytest.raises(AttributeError):
        record.extra = 1  # type: ignore[attr-defined]


def test_a_record_matches_positional_patterns_and_equals_no_other_type() -> None:
    """`case Record(topic, partition, offset, ...)` works; a tuple of the fields is not equal."""
    record = Record("orders", 3, 42, b"k", b"v", (("trace_id", b"x"),), 7)
    match record:
        case Record(topic, partition, offset, key, value, headers, timestamp):
            matched = (topic, partition, offset, key, value, headers, timestamp)
    assert matched == ("orders", 3, 42, b"k", b"v", (("trace_id", b"x"),), 7)
    assert record != matched
    assert record.header("trace_id") == b"x"
    assert record.header("absent") is None


def test_replace_copies_a_record_with_some_fields_changed() -> None:
    """`record.replace(value=...)` is what `dataclasses.replace` gave; unknown fields fail."""
    record = Record("orders", 3, 42, b"k", b"v", (("trace_id", b"x"),), 7)
    changed = record.replace(value=b"w", headers=())
    assert changed == Record("orders", 3, 42, b"k", b"w", (), 7)
    assert record.value == b"v"
    with pytest.raises(TypeError, match="no field 'colour'"):
        record.replace(colour="red")
