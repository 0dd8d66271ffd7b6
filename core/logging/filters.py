"""Handler filters: the logging context snapshot, and no DEBUG from third-party libraries.

`ThirdPartyDebugFilter`: at DEBUG, libraries log what they handle. aiokafka logs
record batches and a dead-lettered record's value verbatim, azure-core and msal log
request details, httpx/httpcore log headers; none of it passes the masking (it is free
text in shapes the masking cannot know). Our own loggers (core, actors, supervisor, a
handler's) may log at DEBUG; the libraries listed in `THIRD_PARTY_LOGGERS` (and their
children) only from INFO up, whatever the root level. The filter sits on the handler,
so it holds for records propagated from any logger, whatever level each logger has.

A record may be formatted later and elsewhere (a queue listener's thread, the log
shipper's task), where the context variables hold something else. `ContextFilter`
snapshots them onto the record when the handler first sees it; formatters prefer that
snapshot to the live context. Add it to the handler that runs where records are logged
(`setup_logging` does so for its own handler); a filter on a logger would only see
records logged directly to that logger, not propagated ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from core.logging.context import state_var

__all__ = ["CONTEXT_ATTRIBUTE", "THIRD_PARTY_LOGGERS", "ContextFilter", "ThirdPartyDebugFilter"]

THIRD_PARTY_LOGGERS: Final[tuple[str, ...]] = (
    "aiokafka",
    "kafka",
    "azure",
    "msal",
    "msal_extensions",
    "urllib3",
    "httpx",
    "httpcore",
    "hpack",
    "h2",
    "asyncio",
)
"""Loggers (with their children) whose records below INFO are dropped."""

CONTEXT_ATTRIBUTE: Final = "core_log_context"
"""The LogRecord attribute holding the `ContextState`; never rendered as a field."""


class ContextFilter(logging.Filter):
    """Snapshot the current context onto each record; lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the snapshot unless an earlier handler already captured the original one."""
        if CONTEXT_ATTRIBUTE not in record.__dict__:
            record.__dict__[CONTEXT_ATTRIBUTE] = state_var.get()
        return True


class ThirdPartyDebugFilter(logging.Filter):
    """Drop records below INFO from third-party loggers; let everything else through."""

    def __init__(self, loggers: Iterable[str] = THIRD_PARTY_LOGGERS) -> None:
        super().__init__()
        names = tuple(loggers)
        self._names = frozenset(names)
        self._children = tuple(f"{name}." for name in names)

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a DEBUG record of a listed logger or one of its children."""
        if record.levelno >= logging.INFO:
            return True
        name = record.name
        return not (name in self._names or name.startswith(self._children))
