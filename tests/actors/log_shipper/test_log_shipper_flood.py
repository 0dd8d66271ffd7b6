"""Floods of log records from many threads and the event loop: nothing waits, all is counted."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from actors.log_shipper import ChannelHandler, FileSink, LogBuffer, LogShipperActor, StdoutSink

pytestmark = pytest.mark.anyio


@pytest.fixture
def flood_logger() -> Iterator[logging.Logger]:
    """A non-propagating logger for the flood, cleaned of its handlers afterwards."""
    log = logging.getLogger("tests.log_shipper.flood")
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


class LoopTicker:
    """Counts 10 ms ticks of the event loop: proof that the loop kept running during a flood.

    Deliberately no bound on how late a tick is: timing is for benchmarks, not tests.
    """

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            await anyio.sleep(0.01)
            self.ticks += 1


def start_flood(logger: logging.Logger, threads: int, per_thread: int) -> list[threading.Thread]:
    """Start `threads` threads, each logging `per_thread` numbered records as fast as it can."""

    def flood(source: int) -> None:
        for number in range(per_thread):
            logger.info("record %d", number, extra={"source": source})

    started = [threading.Thread(target=flood, args=(source,)) for source in range(threads)]
    for thread in started:
        thread.start()
    return started


async def flood_from_loop(logger: logging.Logger, count: int) -> None:
    """Log `count` records from the event loop, yielding every 500 records."""
    for number in range(count):
        logger.info("record %d", number, extra={"source": "loop"})
        if number % 500 == 0:
            await anyio.lowlevel.checkpoint()


async def join(threads: list[threading.Thread]) -> None:
    """Wait for `threads` without blocking the loop, failing the test if they hang."""
    with anyio.fail_after(30):
        for thread in threads:
            await anyio.to_thread.run_sync(thread.join)


async def test_flood_finishes_while_nothing_drains_and_every_drop_is_counted(
    flood_logger: logging.Logger,
) -> None:
    """70k records from 3 threads and the loop complete with no shipper running; counts are exact.

    Finishing with no consumer shows emit never waits for one; the loop keeps ticking meanwhile.
    A plain formatter keeps the flood cheap: the handover is under test, not the JSON encoder.
    """
    buffer = LogBuffer(5_000)
    flood_logger.addHandler(ChannelHandler(buffer, formatter=logging.Formatter("%(message)s")))
    monitor = LoopTicker()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(monitor.run)
        threads = start_flood(flood_logger, threads=3, per_thread=20_000)
        await flood_from_loop(flood_logger, 10_000)
        await join(threads)
        tasks.cancel_scope.cancel()
    stats = buffer.statistics()
    assert stats.emitted == 70_000
    assert (stats.queued, stats.dropped) == (5_000, 70_000 - 5_000)
    assert monitor.ticks > 0

    out = io.StringIO()
    await LogShipperActor(buffer, [StdoutSink(out)], batch_size=1_000).flush()
    stats = buffer.statistics()
    assert (stats.shipped, stats.batches) == (5_000, 5)
    assert stats.emitted == stats.shipped + stats.dropped
    assert len(out.getvalue().splitlines()) == stats.shipped


async def test_flood_through_a_running_shipper_loses_nothing_uncounted(
    flood_logger: logging.Logger, tmp_path: Path
) -> None:
    """With the shipper writing a file during the flood, emitted == shipped + dropped after stop.

    The file holds exactly the shipped records, as valid JSON lines, each source in its order.
    """
    buffer = LogBuffer(1_000)
    flood_logger.addHandler(ChannelHandler(buffer))
    log_file = tmp_path / "flood.log"
    shipper = LogShipperActor(buffer, [FileSink(log_file)], batch_size=500, flush_interval=0.05)
    monitor = LoopTicker()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(monitor.run)
        await tasks.start(shipper.run)
        threads = start_flood(flood_logger, threads=3, per_thread=8_000)
        await flood_from_loop(flood_logger, 8_000)
        await join(threads)
        tasks.cancel_scope.cancel()
    stats = buffer.statistics()
    assert stats.emitted == 32_000
    assert stats.emitted == stats.shipped + stats.dropped
    assert stats.queued == 0
    assert monitor.ticks > 0

    last_seen: dict[object, int] = {}
    lines = log_file.read_text().splitlines()
    assert len(lines) == stats.shipped
    for line in lines:
        payload = json.loads(line)
        number = int(payload["message"].split()[1])
        assert number > last_seen.get(payload["source"], -1)
        last_seen[payload["source"]] = number
