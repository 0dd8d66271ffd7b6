"""ChannelHandler and LogBuffer: format at emit time, drop the oldest when full, wake per batch."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.log_shipper import ChannelHandler, FormattedRecord, LogBuffer


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own that does not propagate, so nothing else sees the test's records."""
    log = logging.getLogger("tests.log_shipper.handler")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def queued_lines(buffer: LogBuffer) -> list[str]:
    """Take everything the buffer holds, oldest first."""
    batch = buffer.next_batch(buffer.capacity)
    assert batch is not None
    buffer.settle(batch)
    return [record.line for record in batch.records]


@given(capacity=st.integers(min_value=1, max_value=50), count=st.integers(0, 200))
def test_full_buffer_keeps_the_newest_records_and_counts_every_drop(
    capacity: int, count: int
) -> None:
    """Putting `count` records into `capacity` slots keeps the newest and counts the drops."""
    buffer = LogBuffer(capacity)
    for number in range(count):
        buffer.put(FormattedRecord("test", str(number)))
    stats = buffer.statistics()
    kept = min(count, capacity)
    assert (stats.emitted, stats.dropped, stats.queued) == (count, count - kept, kept)
    if count:
        assert queued_lines(buffer) == [str(number) for number in range(count - kept, count)]


def test_default_format_is_one_json_object_resolved_when_logged(logger: logging.Logger) -> None:
    """The line is JSON built at emit time: mutating the arguments afterwards changes nothing."""
    buffer = LogBuffer(10)
    logger.addHandler(ChannelHandler(buffer))
    items = ["first"]
    logger.info("items: %s", items)
    items.append("added later")
    [line] = queued_lines(buffer)
    payload = json.loads(line)
    assert (payload["logger"], payload["level"], payload["message"]) == (
        logger.name,
        "INFO",
        "items: ['first']",
    )


def test_exception_traceback_is_captured_at_emit_time(logger: logging.Logger) -> None:
    """logger.exception() yields a line whose `exception` field holds the traceback text."""
    buffer = LogBuffer(10)
    logger.addHandler(ChannelHandler(buffer))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("handling failed")
    [line] = queued_lines(buffer)
    assert "RuntimeError: boom" in json.loads(line)["exception"]


def test_handler_level_and_filters_apply(logger: logging.Logger) -> None:
    """Records below the handler's level, or refused by its filters, never reach the buffer."""
    buffer = LogBuffer(10)
    handler = ChannelHandler(buffer, level=logging.INFO, formatter=logging.Formatter("%(message)s"))
    handler.addFilter(lambda record: "secret" not in record.getMessage())
    logger.addHandler(handler)
    logger.debug("too verbose")
    logger.info("a secret")
    logger.info("kept")
    assert queued_lines(buffer) == ["kept"]


def test_unformattable_record_is_reported_not_raised(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """A formatter that raises is handled the stdlib way (stderr report); the caller goes on."""

    class BrokenFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise ValueError("cannot format")

    buffer = LogBuffer(10)
    logger.addHandler(ChannelHandler(buffer, formatter=BrokenFormatter()))
    logger.info("anything")
    assert buffer.statistics().emitted == 0
    assert "cannot format" in capsys.readouterr().err


@pytest.mark.anyio
async def test_waiter_is_woken_from_a_worker_thread_once_the_depth_is_reached() -> None:
    """wait_for_depth(3) sleeps through two puts from another thread and wakes on the third."""
    buffer = LogBuffer(10)
    woken = anyio.Event()

    async def wait_for_three() -> None:
        await buffer.wait_for_depth(3)
        woken.set()

    def put_one() -> None:
        buffer.put(FormattedRecord("thread", "line"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(wait_for_three)
        await anyio.wait_all_tasks_blocked()
        for _ in range(2):
            await anyio.to_thread.run_sync(put_one)
        await anyio.wait_all_tasks_blocked()
        assert not woken.is_set()
        await anyio.to_thread.run_sync(put_one)
        with anyio.fail_after(5):
            await woken.wait()
    assert buffer.depth == 3


def test_capacity_must_be_positive() -> None:
    """A buffer that could hold nothing is refused."""
    with pytest.raises(ValueError, match="capacity"):
        LogBuffer(0)


@given(
    lengths=st.lists(st.integers(min_value=1, max_value=400), max_size=60),
    max_chars=st.integers(min_value=1, max_value=2000),
)
def test_buffer_holds_at_most_max_chars_keeping_the_newest_and_counting_drops(
    lengths: list[int], max_chars: int
) -> None:
    """By size as by count: the newest lines that fit stay (the newest always), drops counted."""
    buffer = LogBuffer(1000, max_chars=max_chars)
    lines = [str(n % 10) * length for n, length in enumerate(lengths)]
    for line in lines:
        buffer.put(FormattedRecord("x", line))
    stats = buffer.statistics()
    kept = queued_lines(buffer) if lines else []
    assert kept == lines[len(lines) - len(kept) :]
    assert stats.queued_chars == sum(len(line) for line in kept)
    assert stats.queued_chars <= max_chars or len(kept) == 1
    assert stats.dropped == len(lines) - len(kept)
    if len(kept) < len(lines):  # the next older line would not have fit
        assert stats.queued_chars + len(lines[-len(kept) - 1]) > max_chars


def test_handler_drops_third_party_debug_records_but_keeps_our_own(
    logger: logging.Logger,
) -> None:
    """aiokafka's DEBUG (which quotes record values) never reaches the buffer; its warnings do."""
    buffer = LogBuffer(10)
    handler = ChannelHandler(buffer)
    library = logging.getLogger("aiokafka.consumer.fetcher")
    library.addHandler(handler)
    library.propagate = False
    previous = library.level
    library.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        library.debug("record value b'card=4111111111111111'")
        library.warning("fetch failed")
        logger.debug("our own debug line")
    finally:
        library.removeHandler(handler)
        library.propagate = True
        library.setLevel(previous)
    messages = [json.loads(line)["message"] for line in queued_lines(buffer)]
    assert messages == ["fetch failed", "our own debug line"]
