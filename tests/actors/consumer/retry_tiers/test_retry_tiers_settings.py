"""Retry tier settings and naming: what is accepted, what each name maps back to, and
what the failure path does after the last tier with dead-lettering off."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.consumer import ConsumerSettings, ConsumerState
from actors.consumer.client_config import producer_kwargs
from actors.consumer.dead_letter import DeadLetterWriter
from actors.consumer.deliveries import PendingDeliveries
from actors.consumer.failures import Attempt, FailurePath, MustExitError
from actors.consumer.retry_tiers.headers import read_retry_state, retry_headers
from actors.consumer.retry_tiers.settings import RetryTierSettings
from actors.messages import Record
from core.errors import ConfigurationError, TransientError


def settings(**tiers: object) -> ConsumerSettings:
    """Consumer settings for topic `orders` with the given tier settings."""
    return ConsumerSettings(
        bootstrap_servers="127.0.0.1:9092",
        topics=("orders",),
        group_id="g",
        retry_tiers=RetryTierSettings(**tiers),  # type: ignore[arg-type]
    )


def test_tier_topics_are_consumed_and_dead_letter_to_their_source() -> None:
    """The consumer reads its tiers, and a tier record's dead-letter topic is its source's."""
    consumer = settings(delays_s=(30, 300))
    assert consumer.consumed_topics == ("orders", "orders.retry.30s", "orders.retry.5m")
    assert consumer.dead_letter_topic_for("orders.retry.5m") == "orders.dlq"
    assert consumer.dead_letter_topic_for("orders") == "orders.dlq"


def test_a_tier_that_would_be_a_dead_letter_topic_is_refused() -> None:
    """A pattern giving the dead-letter topic's name would mix retries and dead letters."""
    with pytest.raises(ConfigurationError, match="dead-letter topic"):
        ConsumerSettings(
            bootstrap_servers="127.0.0.1:9092",
            topics=("orders",),
            group_id="g",
            dead_letter_topic="{topic}.x.1m",
            retry_tiers=RetryTierSettings(delays_s=(60,), topic_pattern="{topic}.x.{delay}"),
        )


@given(
    attempt=st.integers(0, 8),
    tier=st.integers(0, 8),
    due=st.integers(0, 2**50),
    origin=st.tuples(st.sampled_from(["orders", "a.b"]), st.integers(0, 99), st.integers(0, 2**40)),
    own=st.lists(st.tuples(st.sampled_from(["trace_id", "retry.attempt", "x"]), st.binary())),
)
def test_retry_headers_read_back_and_replace_the_old_ones(
    attempt: int,
    tier: int,
    due: int,
    origin: tuple[str, int, int],
    own: list[tuple[str, bytes]],
) -> None:
    """What a hop writes reads back (attempt one more, the tier, due time, origin); the
    record's own headers stay in order and every retry header appears once."""
    record = Record("t.retry", 0, 5, b"k", b"v", tuple(own), 1, attempt, origin)
    headers = retry_headers(record, TransientError("x"), tier=tier, due_ms=due, now_ms=due)
    state = read_retry_state(headers)
    assert state is not None
    assert (state.attempt, state.tier, state.due_ms, state.origin) == (
        attempt + 1,
        tier,
        due,
        origin,
    )
    names = [name for name, _ in headers]
    kept = [(k, v) for k, v in own if not k.startswith("retry.")]
    assert list(headers[: len(kept)]) == kept
    retry_names = [n for n in names if n.startswith("retry.")]
    assert len(retry_names) == len(set(retry_names))


@pytest.mark.anyio
async def test_after_the_last_tier_without_dead_lettering_the_consumer_must_exit() -> None:
    """A record failing in the last tier with dead-lettering off ends the consumer with a
    TransientError (as spent retries do without tiers), not silently."""
    consumer = ConsumerSettings(
        bootstrap_servers="127.0.0.1:9092",
        topics=("orders",),
        group_id="g",
        dead_letter_topic=None,
        retry_tiers=RetryTierSettings(delays_s=(1,), after_in_place_attempts=False),
    )
    writer = DeadLetterWriter(producer_kwargs(consumer))  # never started: nothing is sent
    deliveries = PendingDeliveries(on_failure=lambda error: pytest.fail(f"failed: {error}"))
    failures = FailurePath(consumer, ConsumerState.for_settings(consumer), writer, None, deliveries)
    record = Record("orders.retry.1s", 0, 3, b"k", b"v", (), None, 1, ("orders", 0, 7))

    async def call(_: Sequence[int]) -> Attempt | None:
        raise AssertionError("no retry in place: the failure goes to the tiers at once")

    try:
        with pytest.raises(MustExitError) as caught:
            await failures.settle([record], Attempt(whole=TransientError("down")), call)
    finally:
        await writer.stop()
    assert isinstance(caught.value.error, TransientError)
    assert "after its last retry tier" in str(caught.value.error)
