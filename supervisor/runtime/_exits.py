"""From a child's exception to the `Exit` the planner decides on."""

from __future__ import annotations

from collections.abc import Callable

from core.types import ErrorCategory
from supervisor.runtime._planner import Exit

__all__ = ["Classify", "exit_of", "retry_after_of"]

Classify = Callable[[BaseException], ErrorCategory]


def exit_of(error: BaseException | None, classify: Classify) -> Exit:
    """The exit of a child that returned (`error` None) or raised `error`.

    Exception groups are classified as a whole by `classify` (the default,
    `core.errors.classify_exception`, lets the most severe member decide).
    """
    if error is None:
        return Exit()
    category = classify(error)
    retry_after = retry_after_of(error) if category is ErrorCategory.CIRCUIT_OPEN else None
    return Exit(category, retry_after)


def retry_after_of(error: BaseException) -> float | None:
    """The wait an exception asks for (`retry_after` seconds); in a group, the longest."""
    if isinstance(error, BaseExceptionGroup):
        waits = [w for w in map(retry_after_of, error.exceptions) if w is not None]
        return max(waits, default=None)
    value = getattr(error, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None
