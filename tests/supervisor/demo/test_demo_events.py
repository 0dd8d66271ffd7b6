"""The demo's stream and handler: poison, replays and one chaos event, deterministically."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.messages import Record
from core.errors import classify_exception
from core.types import ErrorCategory
from supervisor.demo.events import (
    CHAOS_AT,
    POISON_EVERY,
    REPLAY_EVERY,
    ChaosError,
    DemoHandler,
    DemoLedger,
    event_stream,
)

FIRST = list(itertools.islice(event_stream(), 3 * POISON_EVERY * REPLAY_EVERY // 5))


def _record(value: bytes, offset: int = 0) -> Record:
    return Record("demo.events", 0, offset, None, value)


def test_the_stream_is_reproducible() -> None:
    """Two streams with the same seed produce the same records."""
    assert list(itertools.islice(event_stream(), len(FIRST))) == FIRST


def test_kinds_follow_the_documented_schedule() -> None:
    """Poison every POISON_EVERY-th, replays every REPLAY_EVERY-th, one chaos at CHAOS_AT."""
    for event in FIRST:
        if event.number % POISON_EVERY == 0:
            assert event.kind == "poison"
        elif event.number % REPLAY_EVERY == 0:
            assert event.kind == "replay"
    assert [e.number for e in FIRST if e.kind == "chaos"] == [CHAOS_AT]


def test_a_replay_repeats_an_earlier_event_with_its_key_and_trace_id() -> None:
    """A replay carries the id, key, value and trace header of an event sent before it."""
    earlier = {}
    for event in FIRST:
        if event.kind == "replay":
            original = earlier[event.event_id]
            assert (event.key, event.value, event.headers) == (
                original.key,
                original.value,
                original.headers,
            )
        else:
            earlier[event.event_id] = event


def test_poison_is_not_json_and_fails_permanently() -> None:
    """The handler raises on poison with an error the taxonomy calls PERMANENT."""
    poison = next(e for e in FIRST if e.kind == "poison")
    with pytest.raises(ValueError) as caught:
        orjson.loads(poison.value)
    assert classify_exception(caught.value) is ErrorCategory.PERMANENT


@pytest.mark.anyio
@given(st.integers(1, 5))
async def test_chaos_fails_exactly_the_given_attempts_then_succeeds(attempts: int) -> None:
    """The chaos event raises an UNKNOWN error `attempts` times, then is handled."""
    ledger = DemoLedger()
    handler = DemoHandler(ledger, attempts=attempts)
    chaos = next(e for e in FIRST if e.kind == "chaos")
    for _ in range(attempts):
        with pytest.raises(ChaosError) as caught:
            await handler(_record(chaos.value))
        assert classify_exception(caught.value) is ErrorCategory.UNKNOWN
    await handler(_record(chaos.value))
    assert ledger.handled == {chaos.event_id}


def test_the_ledger_expects_every_valid_event_and_counts_the_rest() -> None:
    """Valid and chaos events are expected; poison and replays are only counted."""
    ledger = DemoLedger()
    for event in FIRST:
        ledger.record_produced(event)
    kinds = [e.kind for e in FIRST]
    assert ledger.produced == len(FIRST)
    assert (ledger.poison, ledger.replays) == (kinds.count("poison"), kinds.count("replay"))
    assert len(ledger.expected) == kinds.count("event") + kinds.count("chaos")
    assert ledger.missing() == ledger.expected
