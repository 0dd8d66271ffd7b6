"""The context every log record carries: correlation id, LogContext fields, Kafka record.

One context variable holds the whole state as an immutable triple
(correlation id, fields mapping, KafkaLogContext or None), so reading it for a record is a
single `get` and every change is a single `set` whose token restores the whole state.
Context variables, not thread-locals: the state follows asyncio tasks (each task starts
with a copy of its parent's context) and threads started through
`contextvars.copy_context().run` or `anyio.to_thread.run_sync`.

Scoping: leaving a LogContext or KafkaLogContext restores the whole state as it was on
entry, so a correlation id set inside such a block ends with it (a per-record id set
inside the consumer's per-record KafkaLogContext cannot leak to the next record). A
correlation id set outside any block stays until changed or reset.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Final, TypeAlias

if TYPE_CHECKING:
    from core.logging.kafka_context import KafkaLogContext

__all__ = [
    "ContextState",
    "capture_context",
    "get_correlation_id",
    "get_log_context",
    "new_correlation_id",
    "reset_correlation_id",
    "set_correlation_id",
]

ContextState: TypeAlias = "tuple[str | None, Mapping[str, Any], KafkaLogContext | None]"
"""(correlation id, LogContext fields as rendered for output, Kafka record context).

Never mutated in place."""

EMPTY_STATE: Final[ContextState] = (None, {}, None)

state_var: Final[ContextVar[ContextState]] = ContextVar("core_logging_state", default=EMPTY_STATE)


def capture_context() -> ContextState:
    """Return the current state: one context-variable read, nothing copied."""
    return state_var.get()


def get_correlation_id() -> str | None:
    """Return the correlation id of the current context, or None when none is set."""
    return state_var.get()[0]


def set_correlation_id(value: str | None) -> Token[ContextState]:
    """Set the correlation id; the returned token undoes it via `reset_correlation_id`."""
    _, fields, kafka = state_var.get()
    return state_var.set((value, fields, kafka))


def reset_correlation_id(token: Token[ContextState]) -> None:
    """Restore the state that was current before the `set_correlation_id` call."""
    state_var.reset(token)


def new_correlation_id() -> str:
    """Set a fresh random correlation id (a UUID4 string) and return it."""
    value = str(uuid.uuid4())
    set_correlation_id(value)
    return value


def get_log_context() -> dict[str, Any]:
    """Return every field the current context adds to a record, as a new dict.

    Values are as the formatters write them (secrets masked). Later sources win on a name
    clash: correlation id, then LogContext fields, then the Kafka record's fields (the same
    order the formatters use).
    """
    correlation_id, fields, kafka = state_var.get()
    merged: dict[str, Any] = {}
    if correlation_id is not None:
        merged["correlation_id"] = correlation_id
    merged.update(fields)
    if kafka is not None:
        merged.update(kafka.fields)
    return merged
