"""The process's C allocator: glibc's mmap threshold pinned, so freed fetch buffers go back.

A consumer allocates and frees MB-sized buffers all the time: each fetch response is
read into a buffer, copied out, and each partition's record bytes are copied again
(aiokafka). glibc serves an allocation of at least its mmap threshold (128 KiB by
default) with a mapping of its own, and unmaps it when freed. But the threshold is
dynamic: whenever such a mapping is freed, glibc raises the threshold to its size (up to
32 MiB). After the first freed fetch buffer, the next ones are carved out of the heap
instead, between the small objects that live longer, and the heap can only give back
memory at its top. So its size follows the highest mix of live buffers and small
objects seen so far: resident memory creeps up in steps of megabytes over millions of
records while the live objects stay flat. Measured over three million 1 KB records with
256 in flight: the heap grew from 38 to 53 MiB and kept stepping; with the threshold
pinned it stayed at 14 MiB and resident memory flat, below the unpinned figure from the
first sample on. The price is a fresh mapping, faulted in page by page, for every such
buffer: 4% to 7% of the rate in alternating runs on a shared machine. Trimming the heap
now and then (`malloc_trim`) instead cost less but bounded nothing: between two trims,
every 100,000 records, RSS climbed back to the unpinned high-water mark.

`pin_mmap_threshold` sets the threshold to glibc's default with `mallopt`, which also
turns the dynamic adjustment off: buffers of 128 KiB and more are always mapped and
unmapped. It changes the whole process, so the program calls it once at startup, not
a library: `kafka-pipeline run` does; a program that runs `KafkaConsumerActor` itself
can call it too.

A threshold the operator chose is kept: with `MALLOC_MMAP_THRESHOLD_` or a
`glibc.malloc.mmap_threshold` tunable in `GLIBC_TUNABLES`, glibc already uses theirs.
Other C libraries (musl, macOS) have neither the dynamic threshold nor `mallopt`'s
parameter: nothing is done there.
"""

from __future__ import annotations

import ctypes
import enum
import os
import platform
from collections.abc import Mapping
from typing import Final

__all__ = ["MMAP_THRESHOLD_BYTES", "Pinning", "pin_mmap_threshold"]

MMAP_THRESHOLD_BYTES: Final = 128 * 1024
"""glibc's default mmap threshold, kept fixed."""

M_MMAP_THRESHOLD: Final = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""


class Pinning(enum.Enum):
    """What `pin_mmap_threshold` did."""

    PINNED = "pinned"
    LEFT_TO_OPERATOR = "left to the operator's MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES"
    NOT_GLIBC = "not glibc: nothing to pin"


def pin_mmap_threshold(environ: Mapping[str, str] = os.environ) -> Pinning:
    """Pin glibc's mmap threshold at `MMAP_THRESHOLD_BYTES` unless `environ` sets one
    (see the module docstring). Raises OSError if glibc refuses the value."""
    if platform.libc_ver()[0] != "glibc":
        return Pinning.NOT_GLIBC
    if "MALLOC_MMAP_THRESHOLD_" in environ or "glibc.malloc.mmap_threshold" in environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return Pinning.LEFT_TO_OPERATOR
    libc = ctypes.CDLL(None)
    if libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        raise OSError(f"glibc refused mallopt(M_MMAP_THRESHOLD, {MMAP_THRESHOLD_BYTES})")
    return Pinning.PINNED
