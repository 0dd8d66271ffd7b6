"""A real stdlib logger writing through a formatter into memory, for the logging tests."""

from __future__ import annotations

import io
import logging
from typing import Any

import orjson


class CapturedLog:
    """A standalone Logger (outside the logger hierarchy) whose output is kept in memory."""

    def __init__(
        self,
        formatter: logging.Formatter,
        name: str = "tests.capture",
        *,
        handler_filter: Any = None,
    ) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)
        if handler_filter is not None:
            self.handler.addFilter(handler_filter)
        self.logger = logging.Logger(name, logging.DEBUG)
        self.logger.addHandler(self.handler)

    @property
    def text(self) -> str:
        """Everything written so far."""
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        """The lines written, split on "\\n" only (JSON may hold U+2028 inside strings)."""
        return self.text.split("\n")[:-1]

    def records(self) -> list[dict[str, Any]]:
        """Each line parsed as JSON."""
        return [orjson.loads(line) for line in self.lines()]

    def last(self) -> dict[str, Any]:
        """The last line parsed as JSON."""
        return self.records()[-1]
