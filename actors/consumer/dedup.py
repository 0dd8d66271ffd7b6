"""Skip records whose trace id was handled recently (FR-1.3): at-least-once replays.

A redelivery after a crash or a rebalance brings back records that were handled but not
yet committed; a producer retry duplicates records. Both carry the trace id they had,
so remembering the ids of handled records for a while skips them.

Memory is bounded: an LRU of at most `capacity` ids (an OrderedDict, the oldest evicted
first) and optionally a time to live. An id is remembered only after its handler
succeeded, so a record that failed is never skipped. Each remembered id is bounded too:
an id longer than `MAX_KEPT_ID_CHARS` characters is kept as its 32-byte BLAKE2b digest
(bytes, so it can never equal a kept short id, which is a str). A 256-bit digest makes a
collision, which would skip a record, as likely as a hardware fault; the window's memory
is then at most `capacity` entries of at most that size, whatever the producers send.

Ids compare by their exact text, never lossily: a header's id is its UTF-8 text; a JSON
field's id is the string, or the number's exact literal. orjson reads integers beyond 64
bits as floats (distinct ids would collide and a record would be skipped, yet
committed: silent loss), so a number it read as a float is read again by the standard
library's parser, which hands over the literal itself.

A record without a trace id is not deduplicated: no header of that name, a header whose
value is null, an empty header, a JSON value without the field or with null, an object
or an array there. A record whose trace id cannot be read (the value is not UTF-8 JSON
when the id is a JSON field, or the header is not UTF-8) is not an error of the consumer
either: dedup just does not apply to it; the caller counts it and the handler decides.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Final, Literal

import orjson

__all__ = ["MAX_KEPT_ID_CHARS", "DedupWindow", "TraceIdReader", "UnreadableTraceIdError"]

MAX_KEPT_ID_CHARS: Final = 128
"""Longer ids are kept in the window as their BLAKE2b digest (see the module docstring)."""


class UnreadableTraceIdError(Exception):
    """The record's trace id cannot be read; dedup does not apply to it."""


class TraceIdReader:
    """Reads a record's trace id from a header, or from a top-level field of a JSON value."""

    def __init__(self, source: Literal["header", "json_field"], name: str) -> None:
        if not name:
            raise ValueError(f"the trace id {source} needs a name")
        self.source = source
        self.name = name
        self.read: Callable[[bytes | None, Sequence[tuple[str, bytes | None]]], str | None] = (
            functools.partial(_json_id if source == "json_field" else _header_id, name)
        )
        """`read(value, headers)`: the trace id; None when the record has none;
        UnreadableTraceIdError if unreadable (a partial: read once per record, it is
        called without a method's extra frame)."""


def _header_id(
    name: str, _value: object, headers: Sequence[tuple[str, bytes | None]]
) -> str | None:
    for key, raw in headers:
        if key == name:
            if raw is None:  # a null header value: the record has no id
                return None
            try:
                return raw.decode("utf-8") or None
            except UnicodeDecodeError as exc:
                raise UnreadableTraceIdError(f"header {name!r} is not UTF-8") from exc
    return None


def _json_id(name: str, value: bytes | None, _headers: object) -> str | None:
    if value is None:
        return None
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:  # also numbers beyond a double's range: read exactly
        document = _exact_document(value)
    if not isinstance(document, dict):
        raise UnreadableTraceIdError(f"value is JSON {type(document).__name__}, not an object")
    found = document.get(name)
    if isinstance(found, float):  # maybe an integer beyond 64 bits, rounded: read exactly
        found = _exact_document(value).get(name)
    if found is None or isinstance(found, dict | list):
        return None
    return str(found)


def _exact_document(value: bytes) -> Any:
    """The JSON document with every number kept as its literal text."""
    try:
        return json.loads(value, parse_int=str, parse_float=str, parse_constant=str)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UnreadableTraceIdError("value is not UTF-8 JSON") from exc


class DedupWindow:
    """The trace ids handled most recently: at most `capacity`, each for at most `ttl` s."""

    def __init__(
        self,
        capacity: int,
        *,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if ttl is not None and ttl <= 0:
            raise ValueError(f"ttl must be positive seconds, got {ttl}")
        self.capacity = capacity
        self._ttl = ttl
        self._clock = clock
        self._seen: OrderedDict[str | bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def contains(self, trace_id: str) -> bool:
        """True when `trace_id` was remembered and has not expired or been evicted."""
        if self._ttl is not None:
            self._expire(self._ttl)
        return (trace_id if len(trace_id) <= MAX_KEPT_ID_CHARS else _digest(trace_id)) in self._seen

    def knows_any(self, trace_ids: Collection[str]) -> bool:
        """Whether `contains` is True for any of `trace_ids` (a batch's, asked at once)."""
        if self._ttl is not None:
            self._expire(self._ttl)
        if trace_ids and max(map(len, trace_ids)) > MAX_KEPT_ID_CHARS:
            return any(map(self.contains, trace_ids))
        return not self._seen.keys().isdisjoint(trace_ids)

    def remember_all(self, trace_ids: Iterable[str | None]) -> None:
        """`remember` each of `trace_ids` but None, in order (a batch's, in one call)."""
        seen = self._seen
        stamp = 0.0 if self._ttl is None else self._clock()
        for trace_id in trace_ids:
            if trace_id is None:
                continue
            kept = trace_id if len(trace_id) <= MAX_KEPT_ID_CHARS else _digest(trace_id)
            if kept in seen:
                seen.move_to_end(kept)
            seen[kept] = stamp
        if self._ttl is not None:
            self._expire(self._ttl)
        while len(seen) > self.capacity:
            seen.popitem(last=False)

    def remember(self, trace_id: str) -> None:
        """Remember `trace_id` as handled now, evicting the oldest beyond `capacity`."""
        trace_id_kept = trace_id if len(trace_id) <= MAX_KEPT_ID_CHARS else _digest(trace_id)
        seen = self._seen
        if trace_id_kept in seen:
            seen.move_to_end(trace_id_kept)
        if self._ttl is None:  # no expiry: spare the clock read
            seen[trace_id_kept] = 0.0
        else:
            seen[trace_id_kept] = self._clock()
            self._expire(self._ttl)
        if len(seen) > self.capacity:
            seen.popitem(last=False)

    def _expire(self, ttl: float) -> None:
        oldest_allowed = self._clock() - ttl
        seen = self._seen
        while seen:
            trace_id, remembered_at = next(iter(seen.items()))
            if remembered_at > oldest_allowed:
                return
            del seen[trace_id]


def _digest(trace_id: str) -> bytes:
    """What the window keeps for an id longer than MAX_KEPT_ID_CHARS (the callers keep a
    shorter id itself, checking the length inline: this runs twice per record)."""
    encoded = trace_id.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(encoded, digest_size=32).digest()
