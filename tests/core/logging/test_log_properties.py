"""Rules that hold for every input: valid one-line JSON, no secret leaks, exact restores."""

from __future__ import annotations

import logging
import math
import string
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from log_capture import CapturedLog

from core.logging import (
    OUTPUT_KEYS,
    SECRET_NAME_PARTS,
    ConsoleFormatter,
    JSONFormatter,
    KafkaLogContext,
    LogContext,
    capture_context,
    is_secret_name,
    mask_text,
    reset_correlation_id,
    set_correlation_id,
)

RESERVED_EXTRA_NAMES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
"""Names stdlib logging refuses in extra= (it raises KeyError for them)."""

LOWER = string.ascii_lowercase


class BadStr:
    """A value whose str() raises, standing for misbehaving user objects."""

    def __str__(self) -> str:
        raise ValueError("no text")


any_text = st.text(st.characters(exclude_categories=()), max_size=12)
odd_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
    | st.binary(max_size=8)
    | st.frozensets(st.integers(), max_size=3)
    | st.datetimes()
    | st.builds(object)
    | st.builds(BadStr)
)
odd_keys = any_text | st.integers() | st.tuples(st.integers()) | st.none()
odd_values = st.recursive(
    odd_leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(odd_keys, children, max_size=3)
    ),
    max_leaves=12,
)
extra_names = any_text.filter(lambda name: name not in RESERVED_EXTRA_NAMES)

plain_names = st.text(LOWER + "_", min_size=1, max_size=8).filter(
    lambda name: (
        not is_secret_name(name) and name not in RESERVED_EXTRA_NAMES and name not in OUTPUT_KEYS
    )
)
secret_names = st.builds(
    lambda before, part, after, shout: before + (part.upper() if shout else part) + after,
    st.text(LOWER, max_size=3),
    st.sampled_from(SECRET_NAME_PARTS),
    st.text(LOWER, max_size=3),
    st.booleans(),
).filter(lambda name: name not in RESERVED_EXTRA_NAMES)
sentinels = st.text(string.digits, min_size=3, max_size=6).map(lambda digits: f"Zq{digits}Zq")
"""Secret values: "Zq" (capital Z) can appear nowhere else in the generated records."""
secret_payloads = st.recursive(
    sentinels,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(plain_names, children),
    max_leaves=6,
)
secret_entries = st.dictionaries(secret_names, secret_payloads, min_size=1, max_size=3)
hiding_places = st.recursive(
    secret_entries,
    lambda children: (
        st.lists(children, min_size=1, max_size=2)
        | st.dictionaries(plain_names, children, min_size=1, max_size=2)
    ),
    max_leaves=4,
)
extras_with_secrets = st.builds(
    lambda secret, plain: {**secret, **plain},
    st.dictionaries(secret_names, secret_payloads | hiding_places, max_size=3),
    st.dictionaries(plain_names, hiding_places, max_size=3),
)
"""Sentinels only under secret names, directly or nested below plain names."""


@settings(max_examples=150)
@given(extras=st.dictionaries(extra_names, odd_values, max_size=5), message=any_text)
def test_json_is_always_one_line_of_valid_json_holding_every_extra(
    extras: dict[str, Any], message: str
) -> None:
    """Whatever the extra values and message, the output parses and has every extra name."""
    log = CapturedLog(JSONFormatter())
    log.logger.info(message, extra=extras)
    lines = log.lines()
    assert len(lines) == 1
    line = orjson.loads(lines[0])
    for name in extras:
        assert ("field_" + name if name in OUTPUT_KEYS else name).encode(
            "utf-8", "backslashreplace"
        ).decode() in line


@settings(max_examples=100)
@given(argument=odd_values, template=st.sampled_from(["%s", "%r", "%d", "%s %s", "plain"]))
def test_json_survives_any_message_argument(argument: Any, template: str) -> None:
    """Arguments that do or do not fit the %-template still give one valid JSON line."""
    log = CapturedLog(JSONFormatter())
    log.logger.warning(template, argument)
    (line,) = log.lines()
    assert isinstance(orjson.loads(line)["message"], str)


@settings(max_examples=100)
@given(extras=extras_with_secrets, context=secret_entries)
def test_no_secret_value_reaches_json_or_console_output(
    extras: dict[str, Any], context: dict[str, Any]
) -> None:
    """A value under a secret-looking name, at any depth, in extras or context, never shows."""
    for formatter in (JSONFormatter(), ConsoleFormatter()):
        log = CapturedLog(formatter)
        with LogContext(**context):
            log.logger.info("record", extra=extras)
        assert "Zq" not in log.text


@given(
    token=st.text(string.ascii_letters + string.digits + "-._~+/", min_size=8, max_size=40),
    prose=st.text(LOWER + " ", max_size=20),
    shape=st.sampled_from(
        [
            "{prose} https://a.blob.core.windows.net/c?sv=1&sig={token}&se=2 {prose}",
            "{prose} Authorization: Bearer {token} {prose}",
            "{prose} Endpoint=sb://n/;SharedAccessKeyName=r;SharedAccessKey={token};",
            "{prose} AccountName=a;AccountKey={token}; {prose}",
            "{prose} password={token} {prose}",
        ]
    ),
)
def test_message_credentials_are_masked_in_every_usual_shape(
    token: str, prose: str, shape: str
) -> None:
    """A credential in any of the recognised shapes is gone from the masked text."""
    secret = "T0K" + token
    assert secret not in mask_text(shape.format(prose=prose, token=secret))


@given(name=any_text)
def test_a_name_is_secret_exactly_when_it_contains_a_listed_part(name: str) -> None:
    """is_secret_name is the case-insensitive substring rule and nothing else."""
    assert is_secret_name(name) == any(part in name.lower() for part in SECRET_NAME_PARTS)


formatter_for_timestamps = JSONFormatter()


@given(created=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_timestamp_matches_the_calendar_time_of_any_creation_time(created: float) -> None:
    """The cached timestamp text equals the UTC calendar time of `created`, to the ms."""
    record = logging.makeLogRecord({"msg": "t", "created": created})
    record.msecs = math.floor((created - int(created)) * 1000)
    timestamp = orjson.loads(formatter_for_timestamps.format(record))["timestamp"]
    second = datetime.fromtimestamp(int(created), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert timestamp == f"{second}.{int(record.msecs):03d}Z"


@contextmanager
def correlation_scope(value: str) -> Iterator[None]:
    """Set a correlation id for a block, undoing it with its token."""
    token = set_correlation_id(value)
    try:
        yield
    finally:
        reset_correlation_id(token)


context_steps = st.lists(
    st.one_of(
        st.dictionaries(plain_names, st.integers() | st.text(LOWER), max_size=3).map(
            lambda fields: LogContext(**fields)
        ),
        st.builds(KafkaLogContext, st.text(LOWER, min_size=1), st.integers(0, 99), st.integers(0)),
        st.text(LOWER, min_size=1).map(correlation_scope),
    ),
    max_size=6,
)


def enter_in_turn(steps: list[AbstractContextManager[Any]], fields: dict[str, Any]) -> None:
    """Enter the first step, check the merged fields, recurse, then check the exact restore."""
    if not steps:
        return
    before = capture_context()
    with steps[0]:
        merged = {**fields, **steps[0].fields} if isinstance(steps[0], LogContext) else fields
        assert capture_context()[1] == merged
        enter_in_turn(steps[1:], merged)
    assert capture_context() is before


@given(steps=context_steps)
def test_leaving_nested_contexts_restores_each_earlier_state_exactly(
    steps: list[AbstractContextManager[Any]],
) -> None:
    """Any nesting of contexts merges fields going in and restores the very same state out."""
    outermost = capture_context()
    enter_in_turn(steps, dict(outermost[1]))
    assert capture_context() is outermost
