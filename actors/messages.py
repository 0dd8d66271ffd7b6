"""The typed messages actors exchange; frozen, so a message cannot change after it was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import anyio

from core.read_only import read_only_field

__all__ = [
    "BreakerStateChanged",
    "PausePartitions",
    "Record",
    "RefreshRequest",
    "ResumePartitions",
]


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    """Ask the token refresher for a fresh token for `scope` now (e.g. after an AUTH failure).

    `done` is set once the refresh attempt finished, successfully or not, so the asker
    can wait for it; concurrent requests for one scope share a single refresh.
    """

    scope: str
    reason: str
    done: anyio.Event = field(default_factory=anyio.Event, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BreakerStateChanged:
    """Circuit breaker `breaker` moved from `old_state` to `new_state` at monotonic time `at`.

    The states are `core.resilience.CircuitState` members; typed as Enum here so this
    module stays free of the breaker's implementation.
    """

    breaker: str
    old_state: Enum
    new_state: Enum
    at: float


@dataclass(frozen=True, slots=True)
class PausePartitions:
    """Stop fetching from every assigned partition until resumed (the handler's breaker is open)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ResumePartitions:
    """Fetch again from the partitions paused for `reason`'s breaker."""

    reason: str


class Record:
    """One consumed Kafka record as the handler receives it: the bytes, undecoded.

    The handler decides how to decode; `timestamp` is the record's time in milliseconds
    since the epoch (CreateTime or LogAppendTime, as the topic is configured).

    A record read back from a retry tier (actors.consumer.retry_tiers) keeps its own
    coordinates (`topic` is the tier's topic) and says where it first came from:
    `attempt` is how many times it failed before (0 for a record read from its source
    topic), `original_topic`, `original_partition` and `original_offset` name the record
    in its source topic (its own coordinates for a record that was never retried).

    Immutable like the other messages (equality, hash, repr and FrozenInstanceError as
    on a frozen dataclass), but built from plain slots: the consumer builds one per
    record, and a frozen dataclass's `__init__` cost more than the rest of the hand-over.
    """

    __slots__ = (
        "_attempt",
        "_headers",
        "_key",
        "_offset",
        "_origin",
        "_partition",
        "_timestamp",
        "_topic",
        "_value",
    )
    __match_args__ = (
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

    topic: Final[str] = read_only_field("topic")
    partition: Final[int] = read_only_field("partition")
    offset: Final[int] = read_only_field("offset")
    key: Final[bytes | None] = read_only_field("key")
    value: Final[bytes | None] = read_only_field("value")
    headers: Final[tuple[tuple[str, bytes], ...]] = read_only_field("headers")
    timestamp: Final[int | None] = read_only_field("timestamp")
    attempt: Final[int] = read_only_field("attempt")
    origin: Final[tuple[str, int, int] | None] = read_only_field("origin")
    """(topic, partition, offset) in the source topic of a record read from a retry
    tier; None for a record read from its source topic."""

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: tuple[tuple[str, bytes], ...] = (),
        timestamp: int | None = None,
        attempt: int = 0,
        origin: tuple[str, int, int] | None = None,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._key = key
        self._value = value
        self._headers = headers
        self._timestamp = timestamp
        self._attempt = attempt
        self._origin = origin

    @property
    def original_topic(self) -> str:
        """The source topic this record was first read from."""
        return self._topic if self._origin is None else self._origin[0]

    @property
    def original_partition(self) -> int:
        """Its partition in the source topic."""
        return self._partition if self._origin is None else self._origin[1]

    @property
    def original_offset(self) -> int:
        """Its offset in the source topic."""
        return self._offset if self._origin is None else self._origin[2]

    def _fields(self) -> tuple[object, ...]:
        return (
            self._topic,
            self._partition,
            self._offset,
            self._key,
            self._value,
            self._headers,
            self._timestamp,
            self._attempt,
            self._origin,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self.__match_args__, self._fields(), strict=True)
        )
        return f"Record({shown})"

    def replace(self, **changes: Any) -> Record:
        """A copy with `changes` applied, as `dataclasses.replace` gives a dataclass."""
        fields: dict[str, Any] = dict(zip(self.__match_args__, self._fields(), strict=True))
        unknown = changes.keys() - fields.keys()
        if unknown:
            raise TypeError(f"Record has no field {sorted(unknown)[0]!r}")
        return type(self)(**(fields | changes))

    __replace__ = replace  # copy.replace (Python 3.13)

    def header(self, name: str) -> bytes | None:
        """The value of the first header called `name`, or None."""
        return next((value for key, value in self._headers if key == name), None)
