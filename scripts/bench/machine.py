"""What the figures were measured on: cores, CPU model, Python, date, commit, peer versions."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["PEERS", "describe_machine", "resident_kib"]

PEERS = (
    "tenacity",
    "stamina",
    "backoff",
    "pybreaker",
    "aiobreaker",
    "purgatory",
    "python-json-logger",
    "structlog",
    "aiokafka",
)
"""The libraries compared against (aiokafka: the hand-written loop's client)."""


def describe_machine(root: Path) -> dict[str, str]:
    """Cores, CPU model, Python, UTC date, the checkout's commit and the peers' versions."""
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(root),
        "peers": ";".join(f"{name} {_version(name)}" for name in PEERS),
    }


def resident_kib() -> int:
    """Resident set size of this process in KiB (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _commit(root: Path) -> str:
    """HEAD's short hash, marked when the measured packages have uncommitted changes."""
    try:
        head = _git(root, "rev-parse", "--short", "HEAD")
        changed = _git(root, "status", "--porcelain", "--", "core", "actors", "supervisor")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted changes" if changed else head


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
