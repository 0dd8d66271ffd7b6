"""Context managers that add fields to every record logged inside them, and timed events.

`LogContext` sets a new merged mapping on entry and restores the previous one on exit, so
nesting merges (inner values win) and leaving restores exactly. Being context variables,
they work unchanged in async code: each asyncio task sees its own context. The fields are
rendered (renamed on clashes, secrets masked, containers copied) when the LogContext is
created, so records logged inside it pay nothing for that: a mutable value changed
later is logged as it was then.

`log_phase` and `log_operation` log a start and an end event around a block. The end
event carries `duration_ms` and `outcome`: "success"; "error" with `error_type` and the
`error_category` of core.errors.classify_exception (logged at ERROR, the exception
re-raised); or "cancelled" for a BaseException that is not an Exception (cancellation,
KeyboardInterrupt, SystemExit), logged at the block's level and re-raised. No traceback
is logged: whoever handles the exception decides that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import Token
from types import TracebackType
from typing import Any

from core.errors import classify_exception
from core.logging.context import ContextState, state_var
from core.logging.fields import render_fields

__all__ = ["LogContext", "OperationContext", "StageLogContext", "log_operation", "log_phase"]


class LogContext:
    """Adds `fields` to every record logged inside the `with` block.

    One instance serves one `with` block at a time; create one per use.
    """

    __slots__ = ("_fields", "_rendered", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        self._rendered = render_fields(fields)
        self._token: Token[ContextState] | None = None

    @property
    def fields(self) -> dict[str, Any]:
        """The fields this context adds (a copy)."""
        return dict(self._fields)

    def __enter__(self) -> LogContext:
        if self._token is not None:
            raise RuntimeError(f"{type(self).__name__} is already entered")
        correlation_id, fields, kafka = state_var.get()
        self._token = state_var.set((correlation_id, {**fields, **self._rendered}, kafka))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token = self._token
        if token is None:
            raise RuntimeError(f"{type(self).__name__} was not entered")
        self._token = None
        state_var.reset(token)


class StageLogContext(LogContext):
    """A LogContext naming the pipeline stage (`stage` field) the block belongs to."""

    __slots__ = ()

    def __init__(self, stage: str, **fields: Any) -> None:
        super().__init__(stage=stage, **fields)


class OperationContext(LogContext):
    """A LogContext naming the operation (`operation` field) the block performs."""

    __slots__ = ()

    def __init__(self, operation: str, **fields: Any) -> None:
        super().__init__(operation=operation, **fields)


@contextmanager
def log_phase(
    logger: logging.Logger, name: str, *, level: int = logging.INFO, **fields: Any
) -> Iterator[None]:
    """Log "<name> started" and "<name> finished" around a block, with `phase=name`.

    The records logged inside the block carry `phase` and `fields` too.
    """
    with LogContext(phase=name, **fields):
        yield from _timed(logger, name, level)


@contextmanager
def log_operation(
    logger: logging.Logger, name: str, *, level: int = logging.INFO, **fields: Any
) -> Iterator[None]:
    """Log "<name> started" and "<name> finished" around a block, with `operation=name`.

    The records logged inside the block carry `operation` and `fields` too.
    """
    with OperationContext(name, **fields):
        yield from _timed(logger, name, level)


def _timed(logger: logging.Logger, name: str, level: int) -> Iterator[None]:
    """Log the start, run the block, then log the end event with its duration and outcome."""
    logger.log(level, "%s started", name, extra={"event": "start"})
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        logger.error(
            "%s failed",
            name,
            extra={
                "event": "end",
                "outcome": "error",
                "duration_ms": _elapsed_ms(started),
                "error_type": type(exc).__name__,
                "error_category": classify_exception(exc).value,
            },
        )
        raise
    except BaseException as exc:
        logger.log(
            level,
            "%s cancelled",
            name,
            extra={
                "event": "end",
                "outcome": "cancelled",
                "duration_ms": _elapsed_ms(started),
                "error_type": type(exc).__name__,
            },
        )
        raise
    logger.log(
        level,
        "%s finished",
        name,
        extra={"event": "end", "outcome": "success", "duration_ms": _elapsed_ms(started)},
    )


def _elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a perf_counter reading), to the microsecond."""
    return round((time.perf_counter() - started) * 1000, 3)
