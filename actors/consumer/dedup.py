"""Skip records whose trace id was handled recently (FR-1.3): at-least-once replays.

A redelivery after a crash or a rebalance brings back records that were handled but not
yet committed; a producer retry duplicates records. Both carry the trace id they had,
so remembering the ids of handled records for a while skips them.

Memory is bounded: an LRU of at most `capacity` ids (an OrderedDict, the oldest evicted
first) and optionally a time to live. An id is remembered only after its handler
succeeded, so a record that failed is never skipped.

A record whose trace id cannot be read (the value is not UTF-8 JSON when the id is a
JSON field, or the header is not UTF-8) is not an error of the consumer: dedup just does
not apply to it; the caller counts it and the handler decides.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Literal

import orjson

__all__ = ["DedupWindow", "TraceIdReader", "UnreadableTraceIdError"]


class UnreadableTraceIdError(Exception):
    """The record's trace id cannot be read; dedup does not apply to it."""


class TraceIdReader:
    """Reads a record's trace id from a header, or from a top-level field of a JSON value."""

    def __init__(self, source: Literal["header", "json_field"], name: str) -> None:
        if not name:
            raise ValueError(f"the trace id {source} needs a name")
        self.source = source
        self.name = name
        self._read = _json_id if source == "json_field" else _header_id

    def read(self, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> str | None:
        """The trace id; None when the record has none; UnreadableTraceIdError if unreadable."""
        return self._read(self.name, value, headers)


def _header_id(name: str, _value: object, headers: Sequence[tuple[str, bytes]]) -> str | None:
    for key, raw in headers:
        if key == name:
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
    except orjson.JSONDecodeError as exc:
        raise UnreadableTraceIdError("value is not UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise UnreadableTraceIdError(f"value is JSON {type(document).__name__}, not an object")
    found = document.get(name)
    if found is None or isinstance(found, dict | list):
        return None
    return str(found)


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
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def contains(self, trace_id: str) -> bool:
        """True when `trace_id` was remembered and has not expired or been evicted."""
        if self._ttl is not None:
            self._expire(self._ttl)
        return trace_id in self._seen

    def remember(self, trace_id: str) -> None:
        """Remember `trace_id` as handled now, evicting the oldest beyond `capacity`."""
        seen = self._seen
        if trace_id in seen:
            seen.move_to_end(trace_id)
        if self._ttl is None:  # no expiry: spare the clock read
            seen[trace_id] = 0.0
        else:
            seen[trace_id] = self._clock()
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
