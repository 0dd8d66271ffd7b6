"""Interleaved repeats of statement loops: our code and its peers timed alike, in one run.

Each case is one statement (`call(ok)`, `await guarded()`, a try/except around a
rejection) compiled into the same loop, as `timeit` does, so no case pays for a wrapper
call the others do not. A round runs every case once, in an order rotated from round to
round, so load from other processes on a shared machine hits all cases alike; the
figures are the min and the median over the rounds of each case's ns per operation.

The clock is this process's CPU time: time the scheduler gives to other processes does
not count. Before each run of a case the garbage collector runs, over the objects made
since the benchmark began only (the rest is frozen), so no case pays for another's
garbage. Async cases run inside one asyncio event loop (`asyncio.Runner`), so a peer
that must yield to the loop pays for it, as it would in production.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = ["Case", "Role", "Timing", "interleaved", "rounds_in_rotation"]

Role = Literal["ours", "variant", "peer", "baseline"]
"""ours: the figure held to the target; variant: ours configured otherwise."""
T = TypeVar("T")

CLOCK: Callable[[], int] = time.process_time_ns


@dataclass(frozen=True, slots=True)
class Case:
    """One variant of a benchmark: a statement run in a loop, with the names it uses."""

    name: str
    role: Role
    stmt: str
    names: Mapping[str, Any] = field(default_factory=dict)
    is_async: bool = False
    before_round: Callable[[], object] | None = None
    """Run before each round, untimed: drops what the previous round left behind."""


@dataclass(frozen=True, slots=True)
class Timing:
    """A case's ns per operation, one figure per round."""

    case: Case
    per_op_ns: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.per_op_ns)

    @property
    def median(self) -> float:
        return statistics.median(self.per_op_ns)


def rounds_in_rotation(items: Sequence[T], rounds: int) -> Iterable[tuple[int, T]]:
    """(round, item) for every item in every round, each round starting one item later."""
    for round_number in range(rounds):
        start = round_number % len(items)
        for item in itertools.chain(items[start:], items[:start]):
            yield round_number, item


def interleaved(
    cases: Sequence[Case], *, number: int, repeats: int, runner: asyncio.Runner
) -> list[Timing]:
    """Time `number` operations of each case per round, `repeats` rounds interleaved."""
    loops = [_compile_loop(case, runner) for case in cases]
    samples: list[list[float]] = [[] for _ in cases]
    gc.collect()
    gc.freeze()  # what exists now is never collected again: every collection stays cheap
    try:
        for case, loop in zip(cases, loops, strict=True):
            _prepare(case)
            loop(max(1, number // 10))  # warm-up: specialisation, caches, lazy imports
        for _, index in rounds_in_rotation(range(len(cases)), repeats):
            _prepare(cases[index])
            samples[index].append(loops[index](number) / number)
    finally:
        gc.unfreeze()
    return [Timing(case, tuple(values)) for case, values in zip(cases, samples, strict=True)]


def _prepare(case: Case) -> None:
    if case.before_round is not None:
        case.before_round()
    gc.collect()


def _compile_loop(case: Case, runner: asyncio.Runner) -> Callable[[int], int]:
    """A function running the case's statement `n` times; returns the elapsed CPU ns."""
    body = textwrap.indent(textwrap.dedent(case.stmt).strip(), " " * 8)
    source = (
        f"{'async ' if case.is_async else ''}def _loop(_n):\n"
        "    _started = _clock()\n"
        "    for _ in _repeat(None, _n):\n"
        f"{body}\n"
        "    return _clock() - _started\n"
    )
    namespace: dict[str, Any] = {**case.names, "_clock": CLOCK, "_repeat": itertools.repeat}
    exec(compile(source, f"<bench {case.name}>", "exec"), namespace)
    loop: Callable[[int], Any] = namespace["_loop"]
    if not case.is_async:
        return loop

    def run_in_event_loop(n: int) -> int:
        elapsed: int = runner.run(loop(n))
        return elapsed

    return run_in_event_loop
