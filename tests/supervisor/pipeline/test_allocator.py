"""glibc's mmap threshold pinned: MB-sized buffers never grow the heap, so freeing one
returns the memory."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.pipeline.allocator import MMAP_THRESHOLD_BYTES, Pinning, pin_mmap_threshold

MAX_DYNAMIC_THRESHOLD = 32 * 1024 * 1024
"""The highest value glibc's dynamic threshold reaches on 64-bit machines."""

MALLINFO_FIELDS = [
    "arena",
    "ordblks",
    "smblks",
    "hblks",
    "hblkhd",
    "usmblks",
    "fsmblks",
    "uordblks",
    "fordblks",
    "keepcost",
]
"""glibc's `struct mallinfo2`, all size_t: `arena` is the bytes of the heaps, which give
memory back only from their top."""

HEAP_GROWS_AFTER_A_BIGGER_ONE_WAS_FREED = textwrap.dedent(
    f"""
    import ctypes, sys
    from supervisor.pipeline.allocator import pin_mmap_threshold

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in {MALLINFO_FIELDS!r}]

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    if sys.argv[1] == "pin":
        pin_mmap_threshold()
    big = bytearray(4 * 1024 * 1024)
    del big
    before = mallinfo2().arena
    buffer = bytearray(1024 * 1024)
    print(mallinfo2().arena > before)
    """
)


class MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2` (see MALLINFO_FIELDS)."""

    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO_FIELDS]


def _heap_bytes() -> int:
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    info: MallInfo2 = mallinfo2()
    return int(info.arena)


def _heap_grows_after_a_bigger_one_was_freed(mode: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", HEAP_GROWS_AFTER_A_BIGGER_ONE_WAS_FREED, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip() == "True"


def test_unpinned_glibc_grows_the_heap_for_a_buffer_once_a_bigger_one_was_freed() -> None:
    """Without the pin, a fresh interpreter grows its heap for a 1 MiB buffer once a 4 MiB
    mapping was freed: the dynamic threshold the pin exists for."""
    assert _heap_grows_after_a_bigger_one_was_freed("default") is True


def test_pinned_glibc_keeps_the_heap_even_after_a_bigger_buffer_was_freed() -> None:
    """With the pin, the same 1 MiB buffer leaves the heap as it was in a fresh interpreter."""
    assert _heap_grows_after_a_bigger_one_was_freed("pin") is False


@settings(deadline=None, max_examples=50)
@given(
    size=st.integers(MMAP_THRESHOLD_BYTES, MAX_DYNAMIC_THRESHOLD // 2),
    freed_first=st.integers(MMAP_THRESHOLD_BYTES, MAX_DYNAMIC_THRESHOLD),
)
def test_no_buffer_from_the_threshold_up_grows_the_heap_once_pinned(
    size: int, freed_first: int
) -> None:
    """Once pinned (in this test process, as `kafka-pipeline run` pins its own), a buffer of
    at least the threshold never grows the heap (it fits a hole there, or gets a mapping of
    its own), whatever size was freed before it."""
    assert pin_mmap_threshold({}) is Pinning.PINNED
    earlier = bytearray(freed_first)
    del earlier
    before = _heap_bytes()
    buffer = bytearray(size)
    assert len(buffer) == size
    assert _heap_bytes() == before


@pytest.mark.parametrize(
    "environ",
    [
        {"MALLOC_MMAP_THRESHOLD_": "65536"},
        {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536"},
    ],
)
def test_a_threshold_the_operator_set_is_kept(environ: dict[str, str]) -> None:
    """glibc's own variable or tunable for the threshold leaves the choice to the operator."""
    assert pin_mmap_threshold(environ) is Pinning.LEFT_TO_OPERATOR


def test_other_c_libraries_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a C library other than glibc nothing is pinned (this machine runs glibc, so the
    library's name is the one thing replaced here)."""
    monkeypatch.setattr("platform.libc_ver", lambda: ("", ""))
    assert pin_mmap_threshold({}) is Pinning.NOT_GLIBC
