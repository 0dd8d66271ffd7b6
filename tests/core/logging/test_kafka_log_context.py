"""KafkaLogContext: the consumed record's coordinates on every log line while it is handled."""

from __future__ import annotations

import dataclasses

import pytest
from log_capture import CapturedLog

from core.logging import (
    KAFKA_FIELD_NAMES,
    JSONFormatter,
    KafkaLogContext,
    LogContext,
    get_correlation_id,
    get_log_context,
    is_secret_name,
    reset_correlation_id,
    set_correlation_id,
)


def test_fields_hold_topic_partition_offset_and_consumer_group() -> None:
    """`fields` maps the four Kafka names to the record's coordinates."""
    context = KafkaLogContext("orders", 3, 1_000, "billing")
    assert context.fields == {
        "topic": "orders",
        "partition": 3,
        "offset": 1_000,
        "consumer_group": "billing",
    }


def test_consumer_group_is_omitted_when_not_given() -> None:
    """Without a consumer group, no consumer_group field is written."""
    assert KafkaLogContext("orders", 0, 1).fields == {
        "topic": "orders",
        "partition": 0,
        "offset": 1,
    }


def test_kafka_field_names_are_the_fields_written_and_none_is_masked() -> None:
    """KAFKA_FIELD_NAMES lists exactly the written fields, all readable under the mask rule."""
    assert tuple(KafkaLogContext("t", 0, 0, "g").fields) == KAFKA_FIELD_NAMES
    assert not any(is_secret_name(name) for name in KAFKA_FIELD_NAMES)


def test_kafka_log_context_is_frozen() -> None:
    """Its coordinates cannot be reassigned."""
    context = KafkaLogContext("orders", 0, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.offset = 2  # type: ignore[misc]


def test_kafka_log_context_fields_cannot_be_deleted_either() -> None:
    """Deleting a coordinate fails as on a frozen dataclass, and the value stays."""
    context = KafkaLogContext("orders", 0, 1, "billing")
    for name in KAFKA_FIELD_NAMES:
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(context, name)
    assert context.fields == {
        "topic": "orders",
        "partition": 0,
        "offset": 1,
        "consumer_group": "billing",
    }


def test_a_kafka_log_context_matches_positional_patterns() -> None:
    """`case KafkaLogContext(topic, partition, offset, group)` binds the four coordinates."""
    match KafkaLogContext("orders", 3, 7, "billing"):
        case KafkaLogContext(topic, partition, offset, group):
            assert (topic, partition, offset, group) == ("orders", 3, 7, "billing")
        case _:
            pytest.fail("no match")


def test_a_kafka_log_context_equals_no_other_type() -> None:
    """A tuple or a subclass instance with the same coordinates is not equal to it."""

    class Subclass(KafkaLogContext):
        __slots__ = ()

    context = KafkaLogContext("orders", 1, 2)
    assert context != ("orders", 1, 2, None)
    assert context != Subclass("orders", 1, 2)


def test_equality_and_hash_ignore_whether_it_is_entered() -> None:
    """Two contexts with the same coordinates are equal and hash alike, entered or not."""
    entered = KafkaLogContext("orders", 1, 2)
    other = KafkaLogContext("orders", 1, 2)
    with entered:
        assert entered == other
        assert hash(entered) == hash(other)
    assert KafkaLogContext("orders", 1, 3) != other


def test_repr_shows_the_coordinates_only() -> None:
    """The repr names the record, not the internal token."""
    assert repr(KafkaLogContext("orders", 1, 2, "g")) == (
        "KafkaLogContext(topic='orders', partition=1, offset=2, consumer_group='g')"
    )


def test_entering_adds_the_kafka_fields_and_leaving_removes_them() -> None:
    """Inside the block the fields are part of the context; after it they are gone."""
    with KafkaLogContext("orders", 1, 2) as context:
        assert get_log_context() == context.fields
    assert get_log_context() == {}


def test_enter_returns_the_context_itself() -> None:
    """`with KafkaLogContext(...) as context` binds the same object."""
    context = KafkaLogContext("orders", 1, 2)
    with context as entered:
        assert entered is context


def test_an_inner_record_replaces_the_outer_one_until_it_is_left() -> None:
    """Nesting replaces the coordinates (no merge); leaving restores the outer record."""
    with KafkaLogContext("orders", 1, 2, "g"):
        with KafkaLogContext("retries", 0, 9):
            assert get_log_context() == {"topic": "retries", "partition": 0, "offset": 9}
        assert get_log_context()["topic"] == "orders"


def test_entering_an_entered_kafka_context_again_fails() -> None:
    """One instance serves one block at a time."""
    context = KafkaLogContext("orders", 1, 2)
    with context, pytest.raises(RuntimeError, match="already entered"):
        context.__enter__()


def test_leaving_a_kafka_context_that_was_not_entered_fails() -> None:
    """__exit__ without __enter__ raises RuntimeError."""
    with pytest.raises(RuntimeError, match="not entered"):
        KafkaLogContext("orders", 1, 2).__exit__(None, None, None)


def test_an_error_in_the_block_propagates_and_the_fields_are_removed() -> None:
    """A failing handler leaves no Kafka fields behind."""
    with pytest.raises(LookupError), KafkaLogContext("orders", 1, 2):
        raise LookupError("missing")
    assert get_log_context() == {}


def test_kafka_fields_are_written_with_their_types_beside_context_and_correlation() -> None:
    """A JSON line has the correlation id, LogContext fields and int partition/offset."""
    log = CapturedLog(JSONFormatter())
    set_correlation_id("trace-1")
    with LogContext(actor="consumer"), KafkaLogContext("orders", 4, 77, "billing"):
        log.logger.info("handled")
    line = log.last()
    assert line["correlation_id"] == "trace-1"
    assert line["actor"] == "consumer"
    assert (line["topic"], line["partition"], line["offset"], line["consumer_group"]) == (
        "orders",
        4,
        77,
        "billing",
    )


def test_a_correlation_id_set_for_one_record_does_not_leak_to_the_next() -> None:
    """The per-record id set inside the record's KafkaLogContext ends with that record."""
    for offset, trace in enumerate(["t-0", "t-1"]):
        with KafkaLogContext("orders", 0, offset):
            set_correlation_id(trace)
            assert get_correlation_id() == trace
        assert get_correlation_id() is None


def test_log_context_entered_inside_a_record_keeps_the_kafka_fields() -> None:
    """A LogContext inside the record's block adds fields without dropping the record's."""
    with KafkaLogContext("orders", 2, 5), LogContext(step="decode"):
        assert get_log_context() == {
            "step": "decode",
            "topic": "orders",
            "partition": 2,
            "offset": 5,
        }


def test_a_correlation_id_given_to_the_context_holds_inside_the_block_only() -> None:
    """A correlation id given to the context is the block's, the outer one is back after it,
    and it is not one of the coordinates."""
    token = set_correlation_id("outer")
    context = KafkaLogContext("orders", 0, 7, "billing", "trace-7")
    with context:
        assert get_correlation_id() == "trace-7"
        assert get_log_context()["offset"] == 7
    assert get_correlation_id() == "outer"
    reset_correlation_id(token)
    assert context == KafkaLogContext("orders", 0, 7, "billing")
    assert "trace-7" not in repr(context)
