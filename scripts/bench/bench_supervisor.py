"""Crash-to-running latency of the Supervisor, with no backoff (Backoff(base=0)).

Run: .venv/bin/python scripts/bench/bench_supervisor.py [--crashes N]
A child reports started, yields once (so the supervisor has seen it running),
then raises a TransientError; the latency is from that raise to the next
incarnation's `task_status.started()`: exception capture, the exit message,
the decision, the restart event, spawning the new task and its start. Printed
in microseconds (min / median / p99 / max) for each logging setup:

* off: the "supervisor" logger above ERROR, the events are not logged;
* text: INFO to a stream handler with a plain formatter (tracebacks formatted),
  into an in-memory sink, like a process logging every event.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import time

import anyio
from anyio.abc import TaskStatus

from core.errors import TransientError
from supervisor import Backoff, ChildSpec, Supervisor


async def measure(crashes: int) -> list[float]:
    """Latencies in seconds of `crashes` crash-to-running cycles."""
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

    sup = Supervisor(
        [ChildSpec("flaky", flaky)],
        backoff=Backoff(base=0.0),
        max_restarts=crashes + 1,
        period=3600.0,
    )
    async with anyio.create_task_group() as group:
        await group.start(sup.run)
        await done.wait()
        sup.stop()
    return latencies


def configure_logging(mode: str) -> None:
    """Set up the "supervisor" logger for one of the modes in the module docstring."""
    logger = logging.getLogger("supervisor")
    logger.handlers.clear()
    logger.propagate = False
    if mode == "off":
        logger.setLevel(logging.ERROR)
        return
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def report(label: str, latencies: list[float]) -> None:
    """Print one line of statistics in microseconds."""
    micros = sorted(x * 1e6 for x in latencies)
    p99 = micros[int(len(micros) * 0.99) - 1]
    print(
        f"{label:12} n={len(micros):6d}  min {micros[0]:7.1f} us  "
        f"median {statistics.median(micros):7.1f} us  p99 {p99:7.1f} us  max {micros[-1]:8.1f} us"
    )


def main() -> None:
    """Measure and print each logging mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=20_000)
    args = parser.parse_args()
    for mode in ("off", "text"):
        configure_logging(mode)
        anyio.run(measure, 500)  # warm up
        report(f"logging {mode}", anyio.run(measure, args.crashes))


if __name__ == "__main__":
    main()
