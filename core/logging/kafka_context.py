"""Which Kafka record a log line is about, set once per consumed record.

The consumer builds, enters and leaves one `KafkaLogContext` per record on its hot path,
so all three are kept to the minimum: construction stores four slots, entering costs a
single context-variable get and set, and leaving a single reset. The object itself goes
into the context state, and the formatters read its four attributes directly (no dict
is built). A record's trace id can be given as the block's correlation id: entering then
sets both with the same single `set` (setting it inside the block would cost a second
get and set per record).

It behaves as a frozen dataclass would (equality, hash, repr, FrozenInstanceError on
assignment) without being one: a frozen dataclass's `__init__` goes through
`object.__setattr__` per field, which cost more than the whole context switch. Its
fields are read-only properties over private slots instead (core.read_only).

There is deliberately no record-key field: keys often carry personal data, and every
field whose name contains "key" is masked anyway (see core.logging.masking).
"""

from __future__ import annotations

from contextvars import Token
from types import TracebackType
from typing import Any, Final

from core.logging.context import ContextState, state_var
from core.read_only import read_only_field

__all__ = ["KAFKA_FIELD_NAMES", "KafkaLogContext"]

KAFKA_FIELD_NAMES = ("topic", "partition", "offset", "consumer_group")
"""The names under which a Kafka context appears in a log record."""

# Bound once: looking the methods up on the context variable per record costs more than
# calling them.
_get_state: Final = state_var.get
_set_state: Final = state_var.set
_reset_state: Final = state_var.reset


class KafkaLogContext:
    """The coordinates of one consumed record; a context manager adding them to every log.

    Nesting replaces rather than merges: an inner record's coordinates are the whole truth
    while it is being handled. One instance serves one `with` block at a time.
    """

    __slots__ = (
        "_consumer_group",
        "_correlation_id",
        "_offset",
        "_partition",
        "_token",
        "_topic",
    )
    __match_args__ = ("topic", "partition", "offset", "consumer_group")

    topic: Final[str] = read_only_field("topic")
    partition: Final[int] = read_only_field("partition")
    offset: Final[int] = read_only_field("offset")
    consumer_group: Final[str | None] = read_only_field("consumer_group")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        consumer_group: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        """`correlation_id`, when given, is the correlation id inside the block (it ends
        with the block); it is not one of the coordinates (equality, hash, `fields`)."""
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._consumer_group = consumer_group
        self._correlation_id = correlation_id
        self._token: Token[ContextState] | None = None

    def _coordinates(self) -> tuple[str, int, int, str | None]:
        """What equality and the hash compare, as a dataclass would: the four fields."""
        return (self._topic, self._partition, self._offset, self._consumer_group)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KafkaLogContext) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._coordinates() == other._coordinates()

    def __hash__(self) -> int:
        return hash(self._coordinates())

    def __repr__(self) -> str:
        return (
            f"{type(self).__qualname__}(topic={self._topic!r}, partition={self._partition!r}, "
            f"offset={self._offset!r}, consumer_group={self._consumer_group!r})"
        )

    @property
    def fields(self) -> dict[str, Any]:
        """Return the fields this context adds to a record (consumer_group only when set)."""
        fields: dict[str, Any] = {
            "topic": self._topic,
            "partition": self._partition,
            "offset": self._offset,
        }
        if self._consumer_group is not None:
            fields["consumer_group"] = self._consumer_group
        return fields

    def __enter__(self) -> KafkaLogContext:
        if self._token is not None:
            raise RuntimeError(f"{self!r} is already entered")
        correlation_id, fields, _ = _get_state()
        if self._correlation_id is not None:
            correlation_id = self._correlation_id
        self._token = _set_state((correlation_id, fields, self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token = self._token
        if token is None:
            raise RuntimeError(f"{self!r} was not entered")
        self._token = None
        _reset_state(token)
