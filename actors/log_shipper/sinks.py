"""Where shipped log batches go: the `LogSink` protocol, stdout and an append-only file.

A sink writes a whole batch or raises; the shipper retries a failed batch, so a sink
keeps no half-written state between calls. Stream and file writes run in a worker
thread: a pipe nobody drains or a slow disk must not stall the event loop. `aclose`
releases what the sink holds; the next `write` opens it again, so the shipper may close
its sinks whenever it stops and a restarted shipper reuses the same sink objects.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol, TextIO, runtime_checkable

import anyio.to_thread

from actors._file_mode import DEFAULT_FILE_MODE, check_file_mode, open_for_append
from actors.log_shipper.buffer import FormattedRecord

__all__ = ["FileSink", "LogSink", "StdoutSink"]


@runtime_checkable
class LogSink(Protocol):
    """A destination for batches of formatted log records."""

    async def write(self, batch: Sequence[FormattedRecord]) -> None:
        """Write every record of `batch`, in order, or raise."""
        ...

    async def aclose(self) -> None:
        """Release held resources; a later `write` reopens them."""
        ...


def _joined_lines(batch: Sequence[FormattedRecord]) -> str:
    return "".join(f"{record.line}\n" for record in batch)


class StdoutSink:
    """Writes each record's line (JSON by default) to a text stream, flushed per batch."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout

    def __repr__(self) -> str:
        return f"StdoutSink({getattr(self._stream, 'name', self._stream)!r})"

    async def write(self, batch: Sequence[FormattedRecord]) -> None:
        """Write the batch's lines and flush the stream."""
        await anyio.to_thread.run_sync(self._write_blocking, _joined_lines(batch))

    async def aclose(self) -> None:
        """Flush the stream; it belongs to the caller, so it stays open."""
        await anyio.to_thread.run_sync(self._stream.flush)

    def _write_blocking(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


class FileSink:
    """Appends each record's line to a file (created if missing), flushed per batch.

    With `fsync=True` every batch is also forced to disk before `write` returns: slower,
    but a machine crash then loses nothing that was reported shipped. A missing file is
    created with permissions `file_mode` (default 0600; see actors._file_mode).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        file_mode: int = DEFAULT_FILE_MODE,
    ) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self.file_mode = check_file_mode(file_mode)
        self._file: IO[str] | None = None

    def __repr__(self) -> str:
        return f"FileSink({str(self.path)!r})"

    async def write(self, batch: Sequence[FormattedRecord]) -> None:
        """Append the batch's lines, flush, and fsync when asked."""
        await anyio.to_thread.run_sync(self._write_blocking, _joined_lines(batch))

    async def aclose(self) -> None:
        """Close the file; the next write reopens it for appending."""
        await anyio.to_thread.run_sync(self._close_blocking)

    def _write_blocking(self, text: str) -> None:
        if self._file is None:
            self._file = open_for_append(self.path, self.file_mode, text=True)
        try:
            self._file.write(text)
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
        except BaseException:
            self._close_blocking()  # a retry starts from a freshly opened file
            raise

    def _close_blocking(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()
