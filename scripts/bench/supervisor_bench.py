"""Supervisor: how long from a child's crash to its next incarnation running, no backoff.

A child reports started, yields once (so the supervisor has seen it running), then
raises a TransientError; the latency runs from that raise to the next incarnation's
`task_status.started()`: catching the exit, classifying it, the restart decision and
event, spawning the new task and its start. Wall-clock time (perf_counter), one event
loop, `Backoff(base=0)`.

Two logging setups, interleaved round by round: the "supervisor" logger above ERROR
(events not logged), and INFO through our JSONFormatter into a discarding stream, as a
process logging every event does (the crash's traceback is formatted on each restart).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
from anyio.abc import TaskStatus

from core.errors import TransientError
from core.logging import JSONFormatter
from scripts.bench.logging_bench import NullStream
from scripts.bench.report import Section, TargetCheck
from scripts.bench.timing import rounds_in_rotation
from supervisor import Backoff, ChildSpec, Supervisor

__all__ = ["measure", "run"]

TARGET_MEDIAN_US = 100.0
SETUPS = ("events not logged", "events logged as JSON")


async def measure(crashes: int) -> list[float]:
    """Latencies in seconds of `crashes` crash-to-running cycles of one child."""
    latencies: list[float] = []
    crashed_at: float | None = None
    done = anyio.Event()

    async def flaky(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        nonlocal crashed_at
        task_status.started()
        if crashed_at is not None:
            latencies.append(time.perf_counter() - crashed_at)
        if len(latencies) >= crashes:
            done.set()
            await anyio.sleep_forever()
        await anyio.lowlevel.checkpoint()
        crashed_at = time.perf_counter()
        raise TransientError("crash")

    supervisor = Supervisor(
        [ChildSpec("flaky", flaky)],
        backoff=Backoff(base=0.0),
        max_restarts=crashes + 1,
        period=3600.0,
    )
    async with anyio.create_task_group() as group:
        await group.start(supervisor.run)
        await done.wait()
        supervisor.stop()
    return latencies


@contextmanager
def supervisor_logging(setup: str) -> Iterator[None]:
    """The "supervisor" logger configured for `setup` (see the module docstring)."""
    logger = logging.getLogger("supervisor")
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.propagate = False
    if setup == "events not logged":
        logger.handlers[:] = []
        logger.setLevel(logging.ERROR)
    else:
        handler = logging.StreamHandler(NullStream())
        handler.setFormatter(JSONFormatter())
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def run(crashes: int, repeats: int) -> list[Section]:
    """`repeats` rounds of `crashes` crashes per logging setup, interleaved."""
    rounds: dict[str, list[list[float]]] = {setup: [] for setup in SETUPS}
    for setup in SETUPS:
        with supervisor_logging(setup):
            anyio.run(measure, max(1, crashes // 10))  # warm-up
    for _, setup in rounds_in_rotation(SETUPS, repeats):
        with supervisor_logging(setup):
            rounds[setup].append([latency * 1e6 for latency in anyio.run(measure, crashes)])
    rows = []
    checks = []
    for setup, per_round in rounds.items():
        micros = sorted(latency for one_round in per_round for latency in one_round)
        quietest = min(statistics.median(one_round) for one_round in per_round)
        p99 = micros[max(0, round(len(micros) * 0.99) - 1)]
        rows.append(
            [setup, f"{len(micros):,}"]
            + [f"{value:,.1f}" for value in (micros[0], quietest, statistics.median(micros), p99)]
            + [f"{micros[-1]:,.1f}"]
        )
        checks.append(
            TargetCheck.judged(
                what=f"supervisor: crash to running again, no backoff, {setup}",
                ours=f"median {quietest:,.1f} µs",
                target=f"median <= {TARGET_MEDIAN_US:,.0f} µs",
                met=quietest <= TARGET_MEDIAN_US,
            )
        )
    return [
        Section(
            key="supervisor-restart",
            title="Supervisor: crash to running again, no backoff",
            columns=[
                "logging",
                "restarts",
                "min µs",
                "median µs, quietest round",
                "median µs, all",
                "p99 µs",
                "max µs",
            ],
            rows=rows,
            checks=checks,
            notes=[
                f"{repeats} rounds of {crashes:,} crashes per setup, interleaved; wall clock. "
                "The verdict takes the median of the quietest round: other processes only "
                "ever add latency. No peer: mode's supervisors restart through a token bucket.",
            ],
        )
    ]
