"""The dedup window stays bounded and reads trace ids without ever crashing on bad input."""

from __future__ import annotations

import json
import tracemalloc

import orjson
import pytest
from clocks import ManualClock
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer.dedup import DedupWindow, TraceIdReader, UnreadableTraceIdError


@given(
    st.integers(min_value=1, max_value=20),
    st.lists(st.text(min_size=1, max_size=4), max_size=200),
)
def test_window_holds_at_most_capacity_and_the_latest_ids(capacity: int, ids: list[str]) -> None:
    """However many ids are remembered, the window holds at most `capacity`: the latest ones."""
    window = DedupWindow(capacity)
    for trace_id in ids:
        window.remember(trace_id)
        assert len(window) <= capacity
    latest_distinct = list(dict.fromkeys(reversed(ids)))[:capacity]
    assert all(window.contains(trace_id) for trace_id in latest_distinct)
    assert len(window) == len(latest_distinct)


def test_remembering_again_refreshes_an_id() -> None:
    """An id remembered again is the most recent, so the oldest other id is evicted first."""
    window = DedupWindow(2)
    window.remember("a")
    window.remember("b")
    window.remember("a")
    window.remember("c")
    assert window.contains("a")
    assert not window.contains("b")


def test_ids_expire_after_the_time_to_live() -> None:
    """With a TTL an id is forgotten once it is older than the TTL."""
    clock = ManualClock(start=0.0)
    window = DedupWindow(10, ttl=5.0, clock=clock)
    window.remember("old")
    clock.now = 3.0
    window.remember("new")
    clock.now = 5.5
    assert not window.contains("old")
    assert window.contains("new")
    assert len(window) == 1


def test_header_trace_id_is_read() -> None:
    """The configured header's UTF-8 value is the trace id."""
    reader = TraceIdReader("header", "trace_id")
    assert reader.read(b"x", [("other", b"1"), ("trace_id", b"abc")]) == "abc"
    assert reader.read(b"x", [("other", b"1")]) is None


def test_json_field_trace_id_is_read() -> None:
    """A top-level scalar JSON field is the trace id; a missing or nested one is none."""
    reader = TraceIdReader("json_field", "trace")
    assert reader.read(orjson.dumps({"trace": "t-1"}), []) == "t-1"
    assert reader.read(orjson.dumps({"trace": 42}), []) == "42"
    assert reader.read(orjson.dumps({"other": 1}), []) is None
    assert reader.read(orjson.dumps({"trace": {"nested": 1}}), []) is None
    assert reader.read(None, []) is None


@given(st.binary(max_size=64))
def test_reading_arbitrary_bytes_either_answers_or_says_undecodable(value: bytes) -> None:
    """Any value yields a trace id, none, or UnreadableTraceIdError, never another exception."""
    reader = TraceIdReader("json_field", "trace")
    try:
        found = reader.read(value, [])
    except UnreadableTraceIdError:
        return
    assert found is None or isinstance(found, str)


@pytest.mark.parametrize("value", [b"\xff\xfe", b"not json", b"[1, 2]"])
def test_values_that_are_not_json_objects_are_undecodable(value: bytes) -> None:
    """Invalid UTF-8, invalid JSON and non-object JSON values are reported as undecodable."""
    with pytest.raises(UnreadableTraceIdError):
        TraceIdReader("json_field", "trace").read(value, [])


def test_non_utf8_header_is_undecodable() -> None:
    """A trace id header that is not UTF-8 is reported as undecodable."""
    with pytest.raises(UnreadableTraceIdError):
        TraceIdReader("header", "trace_id").read(None, [("trace_id", b"\xff")])


def test_a_null_header_value_means_no_trace_id() -> None:
    """A trace_id header whose value is null is a record without an id: not deduplicated."""
    reader = TraceIdReader("header", "trace_id")
    assert reader.read(b"v", [("other", b"x"), ("trace_id", None)]) is None


JSON_IDS = st.one_of(
    st.integers(min_value=-(2**200), max_value=2**200),
    st.text(max_size=40),
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(first=JSON_IDS, second=JSON_IDS)
def test_distinct_json_ids_never_collide(first: object, second: object) -> None:
    """Two JSON ids with different literals (integers beyond 2**64 included) read differently."""
    reader = TraceIdReader("json_field", "id")
    literal_first = json.dumps(first)
    literal_second = json.dumps(second)
    read_first = reader.read(f'{{"id": {literal_first}}}'.encode(), [])
    read_second = reader.read(f'{{"id": {literal_second}}}'.encode(), [])
    same_text = str(first) == str(second) or literal_first == literal_second
    assert (read_first == read_second) == same_text


@pytest.mark.parametrize("literal", ["18446744073709551616", "-9223372036854775809", "1e400"])
def test_numbers_orjson_cannot_hold_exactly_are_read_as_their_literal(literal: str) -> None:
    """Integers beyond 64 bits and numbers beyond a double are read as their exact text."""
    reader = TraceIdReader("json_field", "id")
    assert reader.read(f'{{"id": {literal}, "x": 1}}'.encode(), []) == literal


@given(
    ids=st.lists(st.text(min_size=1, max_size=300), min_size=2, max_size=40, unique=True),
)
def test_long_ids_are_kept_as_digests_and_still_told_apart(ids: list[str]) -> None:
    """Ids of any length are remembered and distinct ids stay distinct in the window."""
    window = DedupWindow(len(ids))
    for trace_id in ids[:-1]:
        window.remember(trace_id)
    assert all(window.contains(trace_id) for trace_id in ids[:-1])
    assert not window.contains(ids[-1])


def test_window_memory_does_not_grow_with_id_size() -> None:
    """64 ids of 900 kB take about what 64 ids of 200 characters take (measured, tracemalloc)."""
    capacity = 64
    short = _window_bytes(capacity, 200)
    huge = _window_bytes(capacity, 900_000)
    assert huge <= 2 * short
    assert huge < capacity * 1024  # far below the 57.6 MB the ids themselves hold


def _window_bytes(capacity: int, id_length: int) -> int:
    """Bytes the window holds after remembering `capacity` distinct ids of `id_length`."""
    ids = [f"{n:08d}" + "x" * (id_length - 8) for n in range(capacity)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        window = DedupWindow(capacity)
        for trace_id in ids:
            window.remember(trace_id)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(window) == capacity
    return held


@pytest.mark.parametrize("value", [b"[" * 100_000, b'{"id": ' + b"[" * 100_000, b"\xff\xfe{}"])
def test_values_neither_parser_can_read_are_unreadable_not_a_crash(value: bytes) -> None:
    """Nesting past both parsers' limits or bytes that are not UTF-8: no id, no exception."""
    with pytest.raises(UnreadableTraceIdError):
        TraceIdReader("json_field", "id").read(value, [])


@given(
    st.integers(min_value=1, max_value=12),
    st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "e", "f", "x" * 200]))),
        max_size=12,
    ),
)
def test_a_batch_at_once_is_the_same_as_id_by_id(
    capacity: int, batches: list[list[str | None]]
) -> None:
    """Asking about and remembering a batch's ids at once (`knows_any`, `remember_all`)
    answers and leaves the window as asking and remembering them one by one would."""
    together, alone = DedupWindow(capacity), DedupWindow(capacity)
    for batch in batches:
        ids = {trace_id for trace_id in batch if trace_id is not None}
        assert together.knows_any(ids) == any(alone.contains(trace_id) for trace_id in ids)
        together.remember_all(batch)
        for trace_id in batch:
            if trace_id is not None:
                alone.remember(trace_id)
        assert len(together) == len(alone)
        assert all(together.contains(t) == alone.contains(t) for t in "abcdef")


def test_a_batch_remembered_at_once_expires_after_the_time_to_live() -> None:
    """With a TTL, ids remembered together expire together, and `knows_any` forgets them."""
    clock = ManualClock(start=0.0)
    window = DedupWindow(10, ttl=5.0, clock=clock)
    window.remember_all(["a", None, "b"])
    assert window.knows_any({"b", "z"})
    clock.now = 5.5
    assert not window.knows_any({"a", "b"})
    assert len(window) == 0
