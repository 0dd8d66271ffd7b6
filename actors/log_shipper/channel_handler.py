"""`ChannelHandler`: the logging handler every actor's records go through to the shipper.

It formats each record where it was logged (so a later change to the record's arguments,
or to the context variables of the task that logged it, cannot change the line) and puts
the line into a `LogBuffer`, which never waits for the shipper: the handler is safe on
any thread, the event loop's included. It skips the handler lock the stdlib takes around
`emit`, so emitting threads do not queue behind one another's formatting; the buffer's
own lock covers only the append. Third-party DEBUG records are dropped (see
core.logging.filters.ThirdPartyDebugFilter): they may quote record values verbatim.
"""

from __future__ import annotations

import logging

from actors.log_shipper.buffer import FormattedRecord, LogBuffer
from core.logging import JSONFormatter
from core.logging.filters import ThirdPartyDebugFilter

__all__ = ["ChannelHandler"]


class ChannelHandler(logging.Handler):
    """Format records (JSON lines by default) and queue them for the log shipper."""

    def __init__(
        self,
        buffer: LogBuffer,
        *,
        level: int = logging.NOTSET,
        formatter: logging.Formatter | None = None,
    ) -> None:
        super().__init__(level)
        self.buffer = buffer
        self.setFormatter(formatter if formatter is not None else JSONFormatter())
        self.addFilter(ThirdPartyDebugFilter())

    def handle(self, record: logging.LogRecord) -> bool:
        """Emit `record` if the filters pass it, without taking the handler lock."""
        passed = self.filter(record)
        if passed:
            self.emit(record)
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        """Format `record` now and queue the line; a full buffer drops its oldest line."""
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.buffer.put(FormattedRecord(record.name, line))
