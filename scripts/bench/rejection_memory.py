"""What many rejections of one open breaker leave behind, measured in a fresh process.

    python -m scripts.bench.rejection_memory BREAKER COUNT    # prints one JSON object

A fresh process per breaker, so one that leaks does not inflate the next one's figures.
Measured before and after the rejections (each after `gc.collect()`): RSS, live
pymalloc blocks (`sys.getallocatedblocks()`, which counts every object still alive,
however small), and how many frames the last rejection's traceback holds: a breaker
that raises one shared exception object adds an entry to its traceback on every raise.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiobreaker
import pybreaker
from purgatory.domain.model import OpenedState

from core.errors import CircuitOpenError
from scripts.bench import breakers
from scripts.bench.machine import resident_kib

__all__ = ["BREAKERS", "Growth", "measure_in_subprocess"]

Rejecting = tuple[Callable[[], Any], type[BaseException]]

BREAKERS: dict[str, Callable[[], Rejecting]] = {
    "ours": lambda: (
        functools.partial(breakers.ours(opened=True).call, breakers.ok),
        CircuitOpenError,
    ),
    "purgatory": lambda: (breakers.purgatory_guarded(opened=True), OpenedState),
    "aiobreaker": lambda: (
        functools.partial(breakers.aiobreaker_breaker(opened=True).call, breakers.ok),
        aiobreaker.CircuitBreakerError,
    ),
    "pybreaker": lambda: (
        functools.partial(breakers.pybreaker_breaker(opened=True).call, breakers.ok),
        pybreaker.CircuitBreakerError,
    ),
}
"""Each open breaker as (a call it rejects, the exception it rejects with)."""


@dataclass(frozen=True, slots=True)
class Growth:
    """Memory before and after the rejections."""

    rss_before_kib: int
    rss_after_kib: int
    blocks_before: int
    blocks_after: int
    traceback_frames: int

    @property
    def blocks_growth(self) -> int:
        return self.blocks_after - self.blocks_before

    @property
    def rss_growth_kib(self) -> int:
        return self.rss_after_kib - self.rss_before_kib


def rejection_growth(
    reject: Callable[[], Any], rejected: type[BaseException], count: int
) -> Growth:
    """Memory before and after `count` calls of `reject`, each raising `rejected`."""
    gc.collect()
    rss_before, blocks_before = resident_kib(), sys.getallocatedblocks()
    last: BaseException | None = None
    for _ in range(count):
        try:
            reject()
        except rejected as exc:
            last = exc
    frames = 0
    traceback = last.__traceback__ if last is not None else None
    while traceback is not None:
        frames, traceback = frames + 1, traceback.tb_next
    del last, traceback
    gc.collect()
    return Growth(rss_before, resident_kib(), blocks_before, sys.getallocatedblocks(), frames)


def measure_in_subprocess(breaker: str, count: int) -> Growth:
    """Run this module for `breaker` in a fresh interpreter and read its figures."""
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bench.rejection_memory", breaker, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return Growth(**json.loads(done.stdout))


def main() -> None:
    """Measure the breaker named on the command line and print the figures as JSON."""
    breaker, count = sys.argv[1], int(sys.argv[2])
    reject, rejected = BREAKERS[breaker]()
    print(json.dumps(dataclasses.asdict(rejection_growth(reject, rejected, count))))


if __name__ == "__main__":
    main()
