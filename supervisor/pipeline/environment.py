"""What only the machine can tell about a configuration, checked before anything starts.

`run` and `check-config` both call `Pipeline.check_environment`, which runs these, so a
file `check-config` accepts does not fail `run` at startup (on the same machine, at
the same moment: a health port that a running process of the same file holds is
reported as taken).

- `logging.file` must be a regular file that can be opened for appending, or a path
  where one can be created. A directory, a device or a FIFO is refused: `/dev/full`
  accepts open() and fails every write, and no write of zero bytes reveals that, so
  the rule is "a regular file", not "a path that opens". A file on a device with no
  space left (statvfs: no block available) is refused too. The check opens the file
  with O_APPEND (creating it, mode 0600, and removing it again if it did not exist),
  so it leaves nothing behind and never truncates.
- `health.host` must resolve, and `health.port` must be bindable on it now, also for
  port 0 (any free port): binding port 0 proves the address is one of this machine's.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from supervisor.pipeline.config import ConfigError

__all__ = ["check_health_address", "check_log_file"]


def check_log_file(path: Path, where: str = "logging.file") -> None:
    """Raise ConfigError unless `path` is (or can become) a regular file to append to."""
    try:
        existing = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        existing = None
    except OSError as exc:
        raise ConfigError(where, f"{path} cannot be examined: {exc.strerror}") from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        kind = "a directory" if stat.S_ISDIR(existing.st_mode) else "a device, FIFO or socket"
        raise ConfigError(where, f"{path} is {kind}; logs are appended to a regular file")
    if existing is None and not path.parent.is_dir():
        problem = "is not a directory" if path.parent.exists() else "does not exist"
        raise ConfigError(where, f"{path}: directory {path.parent} {problem}")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(where, f"{path} cannot be opened for appending: {exc.strerror}") from None
    try:
        space = os.fstatvfs(descriptor)
        free_blocks = space.f_bfree if os.geteuid() == 0 else space.f_bavail
        if free_blocks == 0:
            raise ConfigError(where, f"{path}: no space left on its device")
    finally:
        os.close(descriptor)
        if existing is None:
            path.unlink(missing_ok=True)


def check_health_address(host: str, port: int) -> None:
    """Raise ConfigError unless `host` resolves and `port` (also 0) can be bound on it now.

    It binds as anyio's listener does (SO_REUSEADDR, IPv6 only on IPv6 addresses) and
    closes at once.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise ConfigError("health.host", f"{host!r} does not resolve: {exc}") from None
    try:
        for family, kind, protocol, _, address in addresses:
            with socket.socket(family, kind, protocol) as probe:
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
                probe.listen(1)
    except OSError as exc:
        raise ConfigError("health.port", f"{port} on {host} cannot be bound: {exc}") from None
