"""UTC ISO-8601 timestamps with milliseconds, cheap enough for every log record.

`time.strftime` costs more than the rest of a JSON record together, so the text up to
the second is computed once per second and only the milliseconds, taken from a table of
1000 suffixes, are added per record. The cache is one tuple swapped atomically, so threads
sharing a formatter never see a torn pair.
"""

from __future__ import annotations

import time
from typing import Final

__all__ = ["MILLISECOND_SUFFIXES", "UtcTimestamps"]

MILLISECOND_SUFFIXES: Final = tuple(f".{millis:03d}Z" for millis in range(1000))
"""".000Z" to ".999Z", indexed by whole milliseconds."""


class UtcTimestamps:
    """The "YYYY-MM-DDTHH:MM:SS" text of the last second formatted, for the formatters.

    Use: `second, prefix = cached`; if `second` is not the record's whole second, call
    `prefix(second)`; append `MILLISECOND_SUFFIXES[milliseconds]`. The formatters inline
    this to save a call per record.
    """

    __slots__ = ("cached",)

    def __init__(self) -> None:
        self.cached: tuple[int, str] = (-1, "")

    def prefix(self, second: int) -> str:
        """Return the text of `second` up to the seconds digits, and cache it."""
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self.cached = (second, prefix)
        return prefix
