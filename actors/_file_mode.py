"""Files the pipeline creates are private by default: owner read and write only (0600).

The jsonl handler's output holds record values and the log file holds what the pipeline
logs; either may hold personal data, and neither is meant for every account on the
machine. Both are created with `DEFAULT_FILE_MODE` unless configured otherwise (0640
lets a log-reading group in). The mode applies when the file is created (the process's
umask may only take permissions away); an existing file keeps the permissions it has:
who made it decided them, and changing them behind an operator's back would surprise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Final, Literal, overload

__all__ = ["DEFAULT_FILE_MODE", "check_file_mode", "open_for_append"]

DEFAULT_FILE_MODE: Final = 0o600


def check_file_mode(mode: int) -> int:
    """`mode` if it is a permission mode (0 to 0o777), else ValueError naming it."""
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        raise ValueError(f"file mode must be a permission mode from 0o000 to 0o777, got {mode!r}")
    return mode


@overload
def open_for_append(path: Path, mode: int, *, text: Literal[True]) -> IO[str]: ...
@overload
def open_for_append(path: Path, mode: int, *, text: Literal[False]) -> IO[bytes]: ...
def open_for_append(path: Path, mode: int, *, text: bool) -> IO[str] | IO[bytes]:
    """Open `path` for appending, creating it with permissions `mode` if it is missing."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        if text:
            return os.fdopen(descriptor, "a", encoding="utf-8")
        return os.fdopen(descriptor, "ab")
    except BaseException:
        os.close(descriptor)
        raise
