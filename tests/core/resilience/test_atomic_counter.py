"""AtomicCounter: lock-free increments that are never lost, and exact reads."""

from __future__ import annotations

import sys
import threading

import pytest

from core.resilience.atomic_counter import AtomicCounter


def test_counts_from_zero() -> None:
    """A new counter reads 0, and each increment adds one."""
    counter = AtomicCounter()
    assert counter.value() == 0
    for _ in range(3):
        counter.increment()
    assert counter.value() == 3


def test_reading_does_not_change_the_count() -> None:
    """Any number of reads leave the value as it was."""
    counter = AtomicCounter()
    counter.increment()
    assert [counter.value() for _ in range(5)] == [1] * 5


def test_no_increment_is_lost_between_threads_while_others_read() -> None:
    """Eight threads incrementing while another reads end with the exact total."""
    counter = AtomicCounter()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    stop_reading = threading.Event()
    readings: list[int] = []

    def increment_many() -> None:
        for _ in range(20_000):
            counter.increment()

    def read_until_stopped() -> None:
        while not stop_reading.is_set():
            readings.append(counter.value())

    reader = threading.Thread(target=read_until_stopped)
    writers = [threading.Thread(target=increment_many) for _ in range(8)]
    try:
        reader.start()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        stop_reading.set()
        reader.join()
    finally:
        sys.setswitchinterval(previous)
    assert counter.value() == 8 * 20_000
    assert readings == sorted(readings)


def test_adding_many_counts_them_all_between_increments_and_reads() -> None:
    """`add(n)` counts n events; increments and reads around it stay exact."""
    counter = AtomicCounter()
    counter.increment()
    counter.add(41)
    assert counter.value() == 42
    counter.increment()
    counter.add(0)
    assert [counter.value() for _ in range(3)] == [43] * 3


def test_a_counter_refuses_to_count_down() -> None:
    """A negative `add` is a caller's bug, refused rather than silently lowering the count."""
    counter = AtomicCounter()
    with pytest.raises(ValueError, match="only counts up"):
        counter.add(-1)
    assert counter.value() == 0
