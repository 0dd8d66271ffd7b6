"""Attach the logging context to a record in the thread and task that logged it.

A record may be formatted later and elsewhere (a queue listener's thread, the log
shipper's task), where the context variables hold something else. `ContextFilter`
snapshots them onto the record when the handler first sees it; formatters prefer that
snapshot to the live context. Add it to the handler that runs where records are logged
(`setup_logging` does so for its own handler); a filter on a logger would only see
records logged directly to that logger, not propagated ones.
"""

from __future__ import annotations

import logging
from typing import Final

from core.logging.context import state_var

__all__ = ["CONTEXT_ATTRIBUTE", "ContextFilter"]

CONTEXT_ATTRIBUTE: Final = "core_log_context"
"""The LogRecord attribute holding the `ContextState`; never rendered as a field."""


class ContextFilter(logging.Filter):
    """Snapshot the current context onto each record; lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach the snapshot unless an earlier handler already captured the original one."""
        if CONTEXT_ATTRIBUTE not in record.__dict__:
            record.__dict__[CONTEXT_ATTRIBUTE] = state_var.get()
        return True
