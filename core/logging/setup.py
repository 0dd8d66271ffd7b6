"""Configure the root logger for the process: one handler, JSON or console, with context.

Idempotent: the handler is recognised by its name, so a second call replaces it (closing
the old one) instead of stacking a duplicate; handlers installed by others (pytest's
capture, a library's) are left alone. The default stream is stderr, like the stdlib's.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, TextIO

from core.logging.filters import ThirdPartyDebugFilter
from core.logging.formatters import ConsoleFormatter, JSONFormatter

__all__ = ["HANDLER_NAME", "setup_logging"]

HANDLER_NAME: Final = "core.logging"
"""The name of the handler `setup_logging` installs on the root logger."""


def setup_logging(
    level: int | str = "INFO", json_format: bool = True, stream: TextIO | None = None
) -> logging.Handler:
    """Install (or replace) the process's log handler on the root logger and return it.

    `level` is a level number or name (any case); an unknown name raises ValueError before
    anything changes. The handler formats with JSONFormatter, or ConsoleFormatter when
    `json_format` is false. It formats in the thread that logs, so it reads the live
    context and needs no ContextFilter (a handler that formats later does). It drops
    third-party DEBUG records (see core.logging.filters.ThirdPartyDebugFilter).
    """
    level_number = _level_number(level)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JSONFormatter() if json_format else ConsoleFormatter())
    handler.addFilter(ThirdPartyDebugFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
            existing.flush()
            existing.close()
    root.addHandler(handler)
    root.setLevel(level_number)
    return handler


def _level_number(level: int | str) -> int:
    """Return the numeric level for a level number or a level name such as "debug"."""
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number
