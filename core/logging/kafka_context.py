"""Which Kafka record a log line is about, set once per consumed record.

The consumer enters one `KafkaLogContext` per record on its hot path, so entering costs a
single context-variable get and set, and leaving a single reset: the object itself goes
into the context state, and the formatters read its four attributes directly (no dict is
built).

There is deliberately no record-key field: keys often carry personal data, and every
field whose name contains "key" is masked anyway (see core.logging.masking).
"""

from __future__ import annotations

from contextvars import Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from core.logging.context import ContextState, state_var

__all__ = ["KAFKA_FIELD_NAMES", "KafkaLogContext"]

KAFKA_FIELD_NAMES = ("topic", "partition", "offset", "consumer_group")
"""The names under which a Kafka context appears in a log record."""


@dataclass(frozen=True, slots=True)
class KafkaLogContext:
    """The coordinates of one consumed record; a context manager adding them to every log.

    Nesting replaces rather than merges: an inner record's coordinates are the whole truth
    while it is being handled. One instance serves one `with` block at a time.
    """

    topic: str
    partition: int
    offset: int
    consumer_group: str | None = None
    _token: Token[ContextState] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def fields(self) -> dict[str, Any]:
        """Return the fields this context adds to a record (consumer_group only when set)."""
        fields: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
        }
        if self.consumer_group is not None:
            fields["consumer_group"] = self.consumer_group
        return fields

    def __enter__(self) -> KafkaLogContext:
        if self._token is not None:
            raise RuntimeError(f"{self!r} is already entered")
        correlation_id, fields, _ = state_var.get()
        object.__setattr__(self, "_token", state_var.set((correlation_id, fields, self)))
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
        object.__setattr__(self, "_token", None)
        state_var.reset(token)
