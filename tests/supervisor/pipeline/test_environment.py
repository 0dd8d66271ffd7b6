"""The machine checks run before anything starts: the log file and the health address."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from supervisor.pipeline.config import ConfigError
from supervisor.pipeline.environment import check_health_address, check_log_file


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: Path("/dev/full"), "/dev/full is a device, FIFO or socket"),
        (lambda tmp: Path("/dev/null"), "is a device, FIFO or socket"),
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: tmp / "absent" / "p.log", "absent does not exist"),
        (lambda tmp: tmp / "a-file" / "p.log", "a-file is not a directory"),
    ],
    ids=["/dev/full", "/dev/null", "a directory", "missing directory", "parent is a file"],
)
def test_a_log_file_that_cannot_take_appended_lines_is_refused(
    tmp_path: Path, make: object, fragment: str
) -> None:
    """Devices, directories and missing or non-directory parents name logging.file."""
    (tmp_path / "a-file").write_text("")
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as caught:
        check_log_file(path)
    assert caught.value.field == "logging.file"
    assert fragment in str(caught.value)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A named pipe is not a log file (opening it for writing could block until a reader)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="device, FIFO or socket"):
        check_log_file(fifo)


def test_a_new_log_file_is_checked_and_not_left_behind(tmp_path: Path) -> None:
    """The check creates the file to prove it can, and removes it again."""
    path = tmp_path / "p.log"
    check_log_file(path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_log_file_is_left_as_it_was(tmp_path: Path) -> None:
    """Opened for appending only: contents, mode and existence unchanged."""
    path = tmp_path / "p.log"
    path.write_text("earlier lines\n")
    path.chmod(0o640)
    check_log_file(path)
    assert path.read_text() == "earlier lines\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_health_host_that_does_not_resolve_is_named() -> None:
    """A host the resolver does not know is named as health.host, also with port 0."""
    with pytest.raises(ConfigError) as caught:
        check_health_address("kp-no-such-host.invalid", 0)
    assert caught.value.field == "health.host"


def test_a_loopback_address_with_port_0_passes() -> None:
    """Binding any free port on loopback works, and nothing stays bound."""
    check_health_address("127.0.0.1", 0)
    check_health_address("::1", 0)
