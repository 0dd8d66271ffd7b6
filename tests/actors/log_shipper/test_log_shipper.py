"""LogShipperActor: batching by size and by time, flush, graceful stop, sink failures, restarts."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest
from clocks import ManualClock
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.log_shipper import (
    FileSink,
    FormattedRecord,
    LogBuffer,
    LogShipperActor,
    LogSinkError,
    SinkRetryPolicy,
)
from core.errors import CircuitOpenError, PermanentError
from core.types import ErrorCategory
from supervisor import Backoff, ChildSpec, Supervisor

pytestmark = pytest.mark.anyio


class RecordingSink:
    """A sink that keeps every batch it was given, failing first for `failures` writes."""

    def __init__(
        self,
        failures: int = 0,
        error: Callable[[], Exception] = ConnectionError,
        close_error: Exception | None = None,
    ) -> None:
        self.batches: list[list[FormattedRecord]] = []
        self.closed = 0
        self._failures = failures
        self._error = error
        self._close_error = close_error
        self._written = anyio.Event()

    def __repr__(self) -> str:
        return "RecordingSink()"

    @property
    def lines(self) -> list[str]:
        return [record.line for batch in self.batches for record in batch]

    async def write(self, batch: Sequence[FormattedRecord]) -> None:
        await anyio.lowlevel.checkpoint()
        if self._failures > 0:
            self._failures -= 1
            raise self._error()
        self.batches.append(list(batch))
        self._written.set()
        self._written = anyio.Event()

    async def wait_for_batches(self, count: int) -> None:
        """Return once `count` batches were written (failing the test after 5 s)."""
        with anyio.fail_after(5):
            while len(self.batches) < count:
                await self._written.wait()

    async def aclose(self) -> None:
        self.closed += 1
        if self._close_error is not None:
            raise self._close_error


def fill(buffer: LogBuffer, count: int, start: int = 0) -> list[str]:
    """Put `count` numbered lines into `buffer` and return them."""
    lines = [f"line {number}" for number in range(start, start + count)]
    for line in lines:
        buffer.put(FormattedRecord("test", line))
    return lines


async def test_full_batch_is_shipped_without_waiting_for_the_interval() -> None:
    """batch_size waiting records are shipped at once, though the clock never moves."""
    buffer, sink, clock = LogBuffer(100), RecordingSink(), ManualClock(start=0.0)
    shipper = LogShipperActor(
        buffer, [sink], batch_size=5, flush_interval=10.0, clock=clock, sleep=clock.sleep
    )
    async with anyio.create_task_group() as tasks:
        await tasks.start(shipper.run)
        lines = fill(buffer, 12)
        await sink.wait_for_batches(2)
        await anyio.wait_all_tasks_blocked()
        assert [len(batch) for batch in sink.batches] == [5, 5]
        tasks.cancel_scope.cancel()
    assert sink.lines == lines


async def test_partial_batch_is_shipped_when_the_interval_has_passed() -> None:
    """Fewer than batch_size records wait exactly flush_interval after the first one arrived."""
    buffer, sink, clock = LogBuffer(100), RecordingSink(), ManualClock(start=0.0)
    shipper = LogShipperActor(
        buffer, [sink], batch_size=50, flush_interval=2.0, clock=clock, sleep=clock.sleep
    )
    async with anyio.create_task_group() as tasks:
        await tasks.start(shipper.run)
        lines = fill(buffer, 3)
        await anyio.wait_all_tasks_blocked()
        clock.advance(1.99)
        await anyio.wait_all_tasks_blocked()
        assert sink.batches == []
        clock.advance(0.01)
        await sink.wait_for_batches(1)
        tasks.cancel_scope.cancel()
    assert sink.lines == lines


async def test_flush_delivers_everything_queued_in_batches() -> None:
    """flush() ships every queued record in batch_size pieces, in order, with no clock movement."""
    buffer, sink = LogBuffer(1000), RecordingSink()
    shipper = LogShipperActor(buffer, [sink], batch_size=40)
    lines = fill(buffer, 100)
    await shipper.flush()
    assert [len(batch) for batch in sink.batches] == [40, 40, 20]
    assert sink.lines == lines
    assert shipper.statistics().shipped == len(lines)


async def test_graceful_stop_ships_everything_queued_and_closes_the_sinks() -> None:
    """Cancelling a running shipper delivers all queued records first, then closes its sinks."""
    buffer, sink, clock = LogBuffer(10_000), RecordingSink(), ManualClock(start=0.0)
    shipper = LogShipperActor(
        buffer, [sink], batch_size=64, flush_interval=60.0, clock=clock, sleep=clock.sleep
    )
    async with anyio.create_task_group() as tasks:
        await tasks.start(shipper.run)
        lines = fill(buffer, 1000)
        tasks.cancel_scope.cancel()
    assert sink.lines == lines
    assert sink.closed == 1
    stats = shipper.statistics()
    assert (stats.shipped, stats.queued, stats.dropped) == (len(lines), 0, 0)


async def test_stop_delivers_the_partial_batch_and_returns() -> None:
    """stop() cuts the wait for a full batch short: run ships what is queued and returns."""
    buffer, sink, clock = LogBuffer(100), RecordingSink(), ManualClock(start=0.0)
    shipper = LogShipperActor(
        buffer, [sink], batch_size=50, flush_interval=60.0, clock=clock, sleep=clock.sleep
    )
    async with anyio.create_task_group() as tasks:
        await tasks.start(shipper.run)
        lines = fill(buffer, 7)
        await anyio.wait_all_tasks_blocked()
        shipper.stop()
    assert sink.lines == lines
    assert sink.closed == 1


async def test_supervisor_restarts_the_shipper_which_retries_the_kept_batch() -> None:
    """Under the real Supervisor, a TRANSIENT sink failure restarts a fresh shipper on the same
    buffer; each sink gets the batch exactly once, and the supervisor's stop() flushes the rest."""
    buffer = LogBuffer(100)
    flaky, steady = RecordingSink(failures=2), RecordingSink()
    retry = SinkRetryPolicy(attempts_per_run=2, max_attempts=10, backoff=0.0)
    supervisor = Supervisor(
        [
            ChildSpec(
                "log_shipper",
                factory=lambda: LogShipperActor(
                    buffer, [steady, flaky], batch_size=5, flush_interval=60.0, retry=retry
                ),
            )
        ],
        backoff=Backoff(base=0.0, max=0.0, jitter=False),
    )
    first = fill(buffer, 5)
    async with anyio.create_task_group() as tasks:
        await tasks.start(supervisor.run)
        await flaky.wait_for_batches(1)
        rest = fill(buffer, 3, start=5)
        supervisor.stop()
    assert steady.lines == flaky.lines == first + rest
    assert supervisor.stats().children["log_shipper"].restarts == 1
    assert buffer.statistics().sink_errors == 2


async def test_cancelled_shipper_with_a_broken_sink_reports_on_stderr_and_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Draining into a failing sink, and failing to close it, are reported; cancellation wins."""
    buffer = LogBuffer(100)
    broken = RecordingSink(failures=100, close_error=OSError("close failed"))
    retry = SinkRetryPolicy(attempts_per_run=1, max_attempts=100, backoff=0.0)
    shipper = LogShipperActor(buffer, [broken], batch_size=50, flush_interval=60.0, retry=retry)
    async with anyio.create_task_group() as tasks:
        await tasks.start(shipper.run)
        fill(buffer, 3)
        tasks.cancel_scope.cancel()
    stderr = capsys.readouterr().err
    assert "stopped with 3 records undelivered" in stderr
    assert "close failed" in stderr
    assert buffer.statistics().queued == 3


async def test_failing_sink_raises_its_category_and_the_batch_survives_the_restart(
    tmp_path: Path,
) -> None:
    """A sink that keeps failing makes the shipper raise; a new shipper on the buffer ships it."""
    missing_dir = tmp_path / "not-yet"
    file_sink = FileSink(missing_dir / "app.log")
    first = RecordingSink()
    buffer = LogBuffer(100)
    retry = SinkRetryPolicy(attempts_per_run=2, max_attempts=10, backoff=0.0)
    lines = fill(buffer, 7)
    shipper = LogShipperActor(buffer, [first, file_sink], batch_size=5, retry=retry)
    with pytest.raises(LogSinkError) as raised:
        await shipper.run()
    assert raised.value.category is ErrorCategory.UNKNOWN  # FileNotFoundError: not a network error
    assert isinstance(raised.value.__cause__, FileNotFoundError)
    stats = shipper.statistics()
    assert (stats.sink_errors, stats.queued, stats.shipped) == (2, len(lines), 0)

    missing_dir.mkdir()
    restarted = LogShipperActor(buffer, [first, file_sink], batch_size=5, retry=retry)
    await restarted.flush()
    assert first.lines == lines, "the sink that took the batch before the restart got it once"
    assert (missing_dir / "app.log").read_text().splitlines() == lines
    assert restarted.statistics().shipped == len(lines)


async def test_sink_gives_a_batch_up_after_max_attempts_and_the_others_still_get_it() -> None:
    """After max_attempts failures over restarts, the batch is abandoned (counted), not retried."""
    buffer, failing, healthy = LogBuffer(100), RecordingSink(failures=100), RecordingSink()
    retry = SinkRetryPolicy(attempts_per_run=2, max_attempts=5, backoff=0.0)
    lines = fill(buffer, 3)
    for _restart in range(2):
        with pytest.raises(LogSinkError) as raised:
            await LogShipperActor(buffer, [failing, healthy], retry=retry).flush()
        assert raised.value.category is ErrorCategory.TRANSIENT
    await LogShipperActor(buffer, [failing, healthy], retry=retry).flush()
    stats = buffer.statistics()
    assert (stats.abandoned, stats.shipped, stats.sink_errors, stats.queued) == (3, 0, 5, 0)
    assert healthy.lines == lines


async def test_permanent_sink_failure_gives_up_at_once_and_is_raised() -> None:
    """A PERMANENT failure is not retried: other sinks get the batch, then the error is raised."""
    buffer, healthy = LogBuffer(100), RecordingSink()
    rejecting = RecordingSink(failures=1, error=lambda: PermanentError("topic not authorized"))
    lines = fill(buffer, 4)
    with pytest.raises(LogSinkError) as raised:
        await LogShipperActor(buffer, [rejecting, healthy]).flush()
    assert raised.value.category is ErrorCategory.PERMANENT
    assert healthy.lines == lines
    stats = buffer.statistics()
    assert (stats.abandoned, stats.sink_errors, stats.queued) == (4, 1, 0)


async def test_open_circuit_in_a_sink_is_raised_with_its_retry_after() -> None:
    """An open breaker in front of a sink yields CIRCUIT_OPEN with the breaker's retry_after."""
    buffer = LogBuffer(10)
    guarded = RecordingSink(failures=5, error=lambda: CircuitOpenError("kafka-logs", 7.5))
    fill(buffer, 1)
    retry = SinkRetryPolicy(attempts_per_run=1, max_attempts=5, backoff=0.0)
    with pytest.raises(LogSinkError) as raised:
        await LogShipperActor(buffer, [guarded], retry=retry).flush()
    assert raised.value.category is ErrorCategory.CIRCUIT_OPEN
    assert raised.value.retry_after == 7.5
    assert buffer.statistics().queued == 1


@pytest.mark.parametrize(
    "build",
    [
        lambda: LogShipperActor(LogBuffer(1), [], batch_size=0),
        lambda: LogShipperActor(LogBuffer(1), [], flush_interval=0.0),
        lambda: SinkRetryPolicy(attempts_per_run=0),
        lambda: SinkRetryPolicy(attempts_per_run=4, max_attempts=3),
        lambda: SinkRetryPolicy(backoff=-1.0),
    ],
)
def test_nonsensical_settings_are_refused(build: Callable[[], object]) -> None:
    """Empty batches, a zero interval and contradictory retry bounds raise ValueError."""
    with pytest.raises(ValueError):
        build()


async def test_shipper_never_feeds_its_own_failures_into_the_buffer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the handler on the root logger, a failing sink adds no records: it reports to stderr."""
    from actors.log_shipper import ChannelHandler

    buffer = LogBuffer(100)
    handler = ChannelHandler(buffer)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        fill(buffer, 2)
        retry = SinkRetryPolicy(attempts_per_run=1, max_attempts=1, backoff=0.0)
        await LogShipperActor(buffer, [RecordingSink(failures=1)], retry=retry).flush()
    finally:
        root.removeHandler(handler)
    stats = buffer.statistics()
    assert (stats.emitted, stats.abandoned) == (2, 2)
    assert "gave up a batch of 2 records" in capsys.readouterr().err


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=8),
    batch_size=st.integers(min_value=1, max_value=5),
    steps=st.lists(st.one_of(st.integers(min_value=1, max_value=12), st.none()), max_size=25),
)
async def test_any_interleaving_of_emits_and_flushes_keeps_order_and_counts(
    capacity: int, batch_size: int, steps: list[int | None]
) -> None:
    """For any emits (n records) and flushes (None), the newest `capacity` records ship, in order.

    The model is a deque(maxlen=capacity): what it holds at a flush is what must ship.
    """
    buffer, sink = LogBuffer(capacity), RecordingSink()
    shipper = LogShipperActor(buffer, [sink], batch_size=batch_size)
    model: deque[str] = deque(maxlen=capacity)
    expected: list[str] = []
    emitted = 0
    for step in [*steps, None]:
        if step is None:
            await shipper.flush()
            expected.extend(model)
            model.clear()
        else:
            model.extend(fill(buffer, step, start=emitted))
            emitted += step
    assert sink.lines == expected
    stats = buffer.statistics()
    assert stats.emitted == emitted
    assert stats.shipped + stats.dropped == stats.emitted
    assert stats.shipped == len(expected)
