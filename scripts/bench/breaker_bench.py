"""Circuit breakers: ours (core.resilience.CircuitBreaker) vs purgatory, aiobreaker, pybreaker.

* closed: the guarded call returns at once. Ours and aiobreaker and pybreaker through
  `breaker.call(fn)` / `call_async(fn)`; purgatory through its decorator (its documented
  use: a breaker looked up by name on each call). Baseline: the bare call. pybreaker's
  async support needs Tornado, so it is in the sync tables only.
* open: the breaker was opened by one failure and stays open for an hour; each call is
  rejected and the rejection caught. Baseline: raising and catching a new exception.
  purgatory rejects with one shared exception whose traceback grows on every raise; it
  is cleared between rounds (untimed), so the memory it piles up does not slow the
  other cases down.
* memory: a million sync rejections of each, in a fresh process per breaker
  (scripts.bench.rejection_memory says what is measured).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiobreaker
import pybreaker
from purgatory.domain.model import OpenedState

from core.errors import CircuitOpenError
from scripts.bench.breakers import (
    aiobreaker_breaker,
    ok,
    ok_async,
    ours,
    purgatory_guarded,
    purgatory_guarded_async,
    pybreaker_breaker,
)
from scripts.bench.rejection_memory import BREAKERS, measure_in_subprocess
from scripts.bench.report import Section, Target, TargetCheck, micro_section
from scripts.bench.timing import Case, Role, interleaved

__all__ = ["run"]

CLOSED_TARGET = {False: Target(300, "purgatory", 893), True: Target(450, "aiobreaker", 1_125)}
OPEN_TARGET = {False: Target(1_000, "aiobreaker", 2_224), True: Target(1_000, "aiobreaker", 2_351)}
"""The issue's targets, and its figures for the fastest peer on these machines."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One breaker in one state: how to call through it, and what it rejects with."""

    name: str
    role: Role
    call: str
    names: dict[str, Any]
    rejected: type[BaseException]
    before_round: Callable[[], object] | None = None


def contenders(*, opened: bool, is_async: bool, runner: asyncio.Runner) -> list[Contender]:
    """Ours, then each peer with an API for this kind of call, closed or opened."""
    if is_async:
        guarded_async = purgatory_guarded_async(opened=opened, runner=runner)
        return [
            Contender(
                "ours: CircuitBreaker.call_async",
                "ours",
                "await call(fn)",
                {"call": ours(opened=opened).call_async, "fn": ok_async},
                CircuitOpenError,
            ),
            Contender(
                "aiobreaker",
                "peer",
                "await call(fn)",
                {"call": aiobreaker_breaker(opened=opened).call_async, "fn": ok_async},
                aiobreaker.CircuitBreakerError,
            ),
            Contender(
                "purgatory",
                "peer",
                "await guarded()",
                {"guarded": guarded_async},
                OpenedState,
                _forget_shared_traceback(lambda: runner.run(guarded_async())) if opened else None,
            ),
        ]
    guarded = purgatory_guarded(opened=opened)
    return [
        Contender(
            "ours: CircuitBreaker.call",
            "ours",
            "call(fn)",
            {"call": ours(opened=opened).call, "fn": ok},
            CircuitOpenError,
        ),
        Contender(
            "purgatory",
            "peer",
            "guarded()",
            {"guarded": guarded},
            OpenedState,
            _forget_shared_traceback(guarded) if opened else None,
        ),
        Contender(
            "aiobreaker",
            "peer",
            "call(fn)",
            {"call": aiobreaker_breaker(opened=opened).call, "fn": ok},
            aiobreaker.CircuitBreakerError,
        ),
        Contender(
            "pybreaker",
            "peer",
            "call(fn)",
            {"call": pybreaker_breaker(opened=opened).call, "fn": ok},
            pybreaker.CircuitBreakerError,
        ),
    ]


def _forget_shared_traceback(reject: Callable[[], object]) -> Callable[[], object]:
    """For a breaker that rejects with one shared exception: a function clearing its
    traceback, so the frames a round piled onto it do not weigh on the next cases."""
    try:
        reject()
    except Exception as shared:
        return functools.partial(shared.with_traceback, None)
    raise AssertionError("the open breaker let the call through")


def closed_cases(*, is_async: bool, runner: asyncio.Runner) -> list[Case]:
    """The bare call, then every breaker closed."""
    bare = Case(
        "bare call",
        "baseline",
        "await fn()" if is_async else "fn()",
        {"fn": ok_async if is_async else ok},
        is_async,
    )
    return [bare] + [
        Case(c.name, c.role, c.call, c.names, is_async)
        for c in contenders(opened=False, is_async=is_async, runner=runner)
    ]


_REJECT = """
try:
    {call}
except Rejected:
    pass
"""


def open_cases(*, is_async: bool, runner: asyncio.Runner) -> list[Case]:
    """Raising and catching a new exception, then every breaker open, each rejection caught."""
    baseline = Case(
        "raise + catch a new exception",
        "baseline",
        _REJECT.format(call="raise Rejected('open')"),
        {"Rejected": RuntimeError},
        is_async,
    )
    return [baseline] + [
        Case(
            c.name,
            c.role,
            _REJECT.format(call=c.call),
            {**c.names, "Rejected": c.rejected},
            is_async,
            before_round=c.before_round,
        )
        for c in contenders(opened=True, is_async=is_async, runner=runner)
    ]


def memory_section(count: int) -> Section:
    """RSS, live blocks and traceback length around `count` sync rejections of each breaker."""
    growth = {name: measure_in_subprocess(name, count) for name in BREAKERS}
    rows = [
        [
            name,
            f"{g.rss_before_kib:,}",
            f"{g.rss_after_kib:,}",
            f"{g.rss_growth_kib:+,}",
            f"{g.blocks_growth:+,}",
            f"{g.traceback_frames:,}",
        ]
        for name, g in growth.items()
    ]
    mine = growth.pop("ours")
    leaking = [name for name, g in growth.items() if g.blocks_growth > count // 10]
    check = TargetCheck.judged(
        what=f"circuit breaker, open: memory over {count:,} rejections",
        ours=f"{mine.blocks_growth:+,} live blocks, {mine.rss_growth_kib:+,} KiB",
        target="no growth",
        met=mine.blocks_growth < 1_000 and mine.traceback_frames < 10,
        best_peer=("grows: " + ", ".join(leaking)) if leaking else "none grows",
    )
    return Section(
        key="breaker-open-memory",
        title=f"Circuit breaker, open: memory over {count:,} rejections",
        columns=[
            "breaker",
            "RSS before KiB",
            "RSS after KiB",
            "RSS growth KiB",
            "live blocks growth",
            "last traceback frames",
        ],
        rows=rows,
        checks=[check],
        notes=[
            "Sync rejections in a fresh process per breaker; live blocks are "
            "`sys.getallocatedblocks()` after `gc.collect()`: every object still alive.",
            "A breaker that raises one shared exception object adds its frames to that "
            "object's traceback on every rejection, and they live as long as the breaker.",
        ],
    )


def run(number: int, repeats: int, runner: asyncio.Runner, *, rejections: int) -> list[Section]:
    """Closed and open, sync and async, then the memory check."""
    sections = []
    for is_async in (False, True):
        kind = "async `call_async`" if is_async else "sync `call`"
        timings = interleaved(
            closed_cases(is_async=is_async, runner=runner),
            number=number,
            repeats=repeats,
            runner=runner,
        )
        sections.append(
            micro_section(
                f"breaker-closed-{'async' if is_async else 'sync'}",
                f"Circuit breaker, closed, {kind}",
                timings,
                target=CLOSED_TARGET[is_async],
                what=f"circuit breaker, closed, {kind}",
                notes=[f"{number:,} calls per round."],
            )
        )
    for is_async in (False, True):
        kind = "async" if is_async else "sync"
        timings = interleaved(
            open_cases(is_async=is_async, runner=runner),
            number=number,
            repeats=repeats,
            runner=runner,
        )
        sections.append(
            micro_section(
                f"breaker-open-{kind}",
                f"Circuit breaker, open, rejection, {kind}",
                timings,
                target=OPEN_TARGET[is_async],
                what=f"circuit breaker, open, rejection, {kind}",
                notes=[f"{number:,} rejections per round, each caught."],
            )
        )
    sections.append(memory_section(rejections))
    return sections
