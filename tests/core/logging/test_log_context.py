"""Correlation ids, the context state, and ContextFilter's snapshot for deferred handlers."""

from __future__ import annotations

import contextvars
import logging
import logging.handlers
import queue
import threading
import uuid

from log_capture import CapturedLog

from core.logging import (
    MASK,
    ContextFilter,
    JSONFormatter,
    KafkaLogContext,
    LogContext,
    capture_context,
    get_correlation_id,
    get_log_context,
    new_correlation_id,
    reset_correlation_id,
    set_correlation_id,
)
from core.logging.filters import CONTEXT_ATTRIBUTE


def test_no_correlation_id_is_set_in_a_fresh_context() -> None:
    """A fresh context has no correlation id and adds no fields."""
    assert get_correlation_id() is None
    assert get_log_context() == {}


def test_new_correlation_id_sets_and_returns_a_fresh_uuid() -> None:
    """Each call sets a new UUID4 string, which then is the current id."""
    first = new_correlation_id()
    second = new_correlation_id()
    assert first != second
    assert uuid.UUID(second).version == 4
    assert get_correlation_id() == second


def test_set_correlation_id_is_undone_by_its_token() -> None:
    """reset_correlation_id restores the id that was current before the set."""
    set_correlation_id("outer")
    token = set_correlation_id("inner")
    assert get_correlation_id() == "inner"
    reset_correlation_id(token)
    assert get_correlation_id() == "outer"


def test_correlation_id_does_not_leak_out_of_a_copied_context() -> None:
    """An id set inside copy_context().run stays inside that copy."""
    contextvars.copy_context().run(set_correlation_id, "inside")
    assert get_correlation_id() is None


def test_get_log_context_merges_correlation_fields_and_kafka_in_order() -> None:
    """The merged view lists the correlation id, LogContext fields, then Kafka fields."""
    set_correlation_id("c-1")
    with LogContext(actor="consumer"), KafkaLogContext("orders", 0, 3):
        merged = get_log_context()
    assert merged == {
        "correlation_id": "c-1",
        "actor": "consumer",
        "topic": "orders",
        "partition": 0,
        "offset": 3,
    }


def test_get_log_context_shows_values_as_they_will_be_written() -> None:
    """Secret context fields are already masked in the merged view."""
    with LogContext(client_secret="s"):
        assert get_log_context() == {"client_secret": MASK}


def test_a_captured_state_does_not_change_when_the_context_does() -> None:
    """capture_context returns an immutable snapshot: later contexts leave it as it was."""
    with LogContext(stage="a"):
        snapshot = capture_context()
        with LogContext(stage="b"):
            pass
    assert snapshot[1] == {"stage": "a"}


def test_context_filter_attaches_the_state_and_passes_every_record() -> None:
    """The filter lets the record through and stores the current state on it."""
    record = logging.makeLogRecord({"msg": "m"})
    with LogContext(stage="s"):
        passed = ContextFilter().filter(record)
        state = capture_context()
    assert passed is True
    assert getattr(record, CONTEXT_ATTRIBUTE) is state


def test_context_filter_keeps_the_first_snapshot_of_a_record() -> None:
    """A second filter, in another context, does not replace the original snapshot."""
    record = logging.makeLogRecord({"msg": "m"})
    with LogContext(stage="first"):
        ContextFilter().filter(record)
    with LogContext(stage="second"):
        ContextFilter().filter(record)
    assert getattr(record, CONTEXT_ATTRIBUTE)[1] == {"stage": "first"}


def log_through_queue(with_filter: bool) -> dict[str, object]:
    """Log one record inside a LogContext through a queue; return what the listener wrote."""
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    queue_handler = logging.handlers.QueueHandler(records)
    if with_filter:
        queue_handler.addFilter(ContextFilter())
    logger = logging.Logger("tests.queued", logging.DEBUG)
    logger.addHandler(queue_handler)
    sink = CapturedLog(JSONFormatter())
    listener = logging.handlers.QueueListener(records, sink.handler)
    listener.start()
    try:
        with LogContext(request="r-1"):
            logger.info("handled")
    finally:
        listener.stop()
    return sink.last()


def test_context_reaches_a_queue_listener_thread_through_the_filter() -> None:
    """With ContextFilter on the QueueHandler, the listener thread writes the logger's context."""
    assert log_through_queue(with_filter=True)["request"] == "r-1"


def test_without_the_filter_a_queue_listener_thread_sees_its_own_context() -> None:
    """Without ContextFilter, formatting in the listener thread loses the logger's context."""
    assert "request" not in log_through_queue(with_filter=False)


def test_a_plain_thread_starts_without_the_context_and_copy_context_carries_it() -> None:
    """threading.Thread does not inherit context variables; copy_context().run does."""
    seen: dict[str, str | None] = {}
    set_correlation_id("main")
    plain = threading.Thread(target=lambda: seen.update(plain=get_correlation_id()))
    context = contextvars.copy_context()
    copied = threading.Thread(target=lambda: seen.update(copied=context.run(get_correlation_id)))
    for thread in (plain, copied):
        thread.start()
        thread.join()
    assert seen == {"plain": None, "copied": "main"}
