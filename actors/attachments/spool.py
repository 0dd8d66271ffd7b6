"""Writes a downloaded body to a temporary file and hashes it on the way.

The body never sits in memory whole: chunks are gathered up to `flush_bytes` and then
written and hashed in a worker thread (hashlib releases the GIL for large updates),
so neither the disk nor the hash stalls the event loop, and a small file costs one
thread hop. The file is created in the directory the store names (for a local store,
on the same file system as the destination, so placing it is an atomic rename).
A spool that is not kept is deleted.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Final

import anyio.to_thread

__all__ = ["BodySpool"]

_DEFAULT_FLUSH_BYTES: Final = 256 * 1024


class BodySpool:
    """A temporary file being filled: `size` and `sha256` describe what was added."""

    def __init__(self, directory: Path, *, flush_bytes: int = _DEFAULT_FLUSH_BYTES) -> None:
        descriptor, name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=directory)
        self.path = Path(name)
        self._file: IO[bytes] = os.fdopen(descriptor, "wb")
        self._hash = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flush_bytes = flush_bytes
        self.size = 0

    async def add(self, chunk: bytes) -> None:
        """Append `chunk` (written once enough is gathered)."""
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        self.size += len(chunk)
        if self._pending_bytes >= self._flush_bytes:
            await self._flush()

    async def finish(self) -> str:
        """Write what is left, close the file and return the SHA-256 (hex) of everything."""
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        await anyio.to_thread.run_sync(self._write_and_close, data)
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Close and delete the file (after a failure); safe to call more than once."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    async def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        await anyio.to_thread.run_sync(self._write, data)

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)

    def _write_and_close(self, data: bytes) -> None:
        self._write(data)
        self._file.close()
