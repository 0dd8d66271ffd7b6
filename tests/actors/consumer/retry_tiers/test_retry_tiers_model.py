"""The retry tiers' routing and due/pause decisions under any failure schedule, without
a broker: the real gate, sender, headers and pause reasons, over in-memory logs and a
virtual clock, with tier partitions revoked and reassigned at random."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.consumer.deliveries import PendingDeliveries
from actors.consumer.handover import record_of
from actors.consumer.pauses import PauseReasons
from actors.consumer.retry_tiers.gate import TierGate
from actors.consumer.retry_tiers.keys import KeysInRetry
from actors.consumer.retry_tiers.naming import TierMap
from actors.consumer.retry_tiers.sender import TierSender, next_tier_index
from actors.consumer.retry_tiers.settings import RetryTierSettings
from actors.consumer.stats import ConsumerStats
from actors.messages import Record
from core.errors import TransientError

SOURCE = "orders"


@dataclass
class Message:
    """What aiokafka hands over: a fetched record's plain fields."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int | None


@dataclass
class Logs:
    """Each tier's log (one partition each) and the dead-letter topic."""

    loop: asyncio.AbstractEventLoop
    """The loop the deliveries belong to (never run: their callbacks do not matter here)."""
    tiers: dict[str, list[Message]] = field(default_factory=dict)
    dead_letters: list[Record] = field(default_factory=list)

    async def enqueue(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any
    ) -> asyncio.Future[None]:
        """The produce: appended to the tier's log at once, its delivery acknowledged."""
        log = self.tiers.setdefault(topic, [])
        log.append(Message(topic, 0, len(log), key, value, tuple(headers), None))
        delivery: asyncio.Future[None] = self.loop.create_future()
        delivery.set_result(None)
        return delivery


def at_once(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits (the in-memory produce) to its end."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("the in-memory produce waited")


@dataclass
class TierConsumer:
    """A consumer's positions and pauses on the tier partitions, as aiokafka keeps them."""

    positions: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, tp: TopicPartition) -> None:
        self.paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self.paused.discard(tp)


schedules = st.lists(st.integers(0, 5), min_size=1, max_size=12)
"""How many times each record fails before it succeeds."""
delays = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)
steps = st.lists(st.tuples(st.integers(1, 1500), st.booleans()), min_size=1, max_size=400)
"""Each turn of the fetch loop: milliseconds that pass, and whether the tiers are revoked
and assigned again first."""


@dataclass
class Outcome:
    """How a simulated run ended: the records handled and dead-lettered, in order."""

    handled: list[Record]
    dead_letters: list[Record]
    ended: list[Record]
    """Both, in the order they ended."""


def simulate(
    fail_first: list[int],
    keys: list[bytes],
    delays_s: tuple[int, ...],
    turns: list[tuple[int, bool]],
    *,
    keep_key_order: bool,
) -> Outcome:
    """Run the tiers over one source partition of records (record i has key `keys[i]`
    and fails its first `fail_first[i]` handlings) until each ended; asserts on the way
    that no record is handled before it is due."""
    with closing(asyncio.new_event_loop()) as loop:
        return _simulate(fail_first, keys, delays_s, turns, loop, keep_key_order=keep_key_order)


def _simulate(
    fail_first: list[int],
    keys: list[bytes],
    delays_s: tuple[int, ...],
    turns: list[tuple[int, bool]],
    loop: asyncio.AbstractEventLoop,
    *,
    keep_key_order: bool,
) -> Outcome:
    now = [1_000_000]
    tier_settings = RetryTierSettings(delays_s=delays_s, topic_pattern="{topic}.retry.{index}")
    tiers = TierMap(tier_settings, [SOURCE])
    pauses, stats, logs, consumer = PauseReasons(), ConsumerStats(), Logs(loop), TierConsumer()
    in_retry = KeysInRetry(tiers, max_keys=1000) if keep_key_order else None
    gate = TierGate(
        tiers,
        pauses,
        stats,
        pause=consumer.pause,
        seek=consumer.seek,
        resume=consumer.resume,
        wall_ms=lambda: now[0],
        monotonic=lambda: now[0] / 1000,
    )
    deliveries = PendingDeliveries(on_failure=lambda error: pytest.fail(f"failed: {error}"))
    sender = TierSender(tiers, logs, deliveries, stats, wall_ms=lambda: now[0])  # type: ignore[arg-type]
    committed: dict[TopicPartition, int] = {}
    outcome = Outcome([], logs.dead_letters, [])
    calls: dict[bytes, int] = {}

    def handle(record: Record) -> None:
        due = record.header("retry.due.ms")
        assert due is None or int(due) <= now[0], "handled before due"
        if in_retry is not None:
            held = in_retry.hold_back(record)
            if held is not None:
                at_once(sender.send(record, None, sender.tier(record, held)))
                in_retry.sent(record, held)
                return
        value = record.value or b""
        calls[value] = calls.get(value, 0) + 1
        if calls[value] <= fail_first[int(value)]:
            error = TransientError(f"failure {calls[value]}")
            tier = sender.next_tier(record)
            if tier is None:
                logs.dead_letters.append(sender.final_headers(record, error))
                outcome.ended.append(record)
                if in_retry is not None:
                    in_retry.ended(record)
            else:
                at_once(sender.send(record, error, tier))
                if in_retry is not None:
                    in_retry.sent(record, tier.index)
            return
        outcome.handled.append(record)
        outcome.ended.append(record)
        if in_retry is not None:
            in_retry.ended(record)

    for index in range(len(fail_first)):
        handle(record_of(Message(SOURCE, 0, index, keys[index], str(index).encode(), (), now[0])))

    settle = [(500, False)] * (2 * sum(delays_s) * (len(fail_first) + 1) + 4)
    """Then the clock runs on, undisturbed, long enough for every record to end."""
    for elapsed, rebalance in [*turns, *settle]:
        now[0] += elapsed
        if rebalance:
            for tp in list(consumer.positions):
                pauses.lift_partition((tp.topic, tp.partition))
                consumer.paused.discard(tp)
                consumer.positions[tp] = committed.get(tp, 0)
        gate.resume_due()
        for topic, log in list(logs.tiers.items()):
            tp = TopicPartition(topic, 0)
            position = consumer.positions.setdefault(tp, 0)
            if tp in consumer.paused or position >= len(log):
                continue
            fetched = log[position:]
            consumer.positions[tp] = len(log)
            admitted = gate.admit(tp, fetched)
            for message in admitted:
                handle(record_of(message))
            if admitted:
                committed[tp] = admitted[-1].offset + 1
        drained = all(
            consumer.positions.get(TopicPartition(t, 0), 0) >= len(log)
            for t, log in logs.tiers.items()
        )
        if drained and len(outcome.ended) >= len(fail_first):
            break
    return outcome


@settings(max_examples=150)
@given(fail_first=schedules, delays_s=delays, turns=steps)
def test_every_record_ends_once_none_lost_none_handled_before_due(
    fail_first: list[int], delays_s: tuple[int, ...], turns: list[tuple[int, bool]]
) -> None:
    """For any failure schedule, delays, clock steps and rebalances: each record is handled
    successfully once or dead-lettered once (after exactly as many tiers as there are),
    from the tier its failures lead to, never before it is due."""
    keys = [str(i).encode() for i in range(len(fail_first))]
    outcome = simulate(fail_first, keys, delays_s, turns, keep_key_order=False)
    ended = [int(r.value or b"") for r in outcome.ended]
    assert sorted(ended) == list(range(len(fail_first)))
    for record in outcome.handled:
        failures = fail_first[int(record.value or b"")]
        assert record.attempt == failures
        if failures:
            assert record.topic == f"{SOURCE}.retry.{failures - 1}"
            assert record.original_topic == SOURCE
            assert record.original_offset == int(record.value or b"")
    for letter in outcome.dead_letters:
        assert fail_first[int(letter.value or b"")] > len(delays_s)
        assert letter.header("retry.attempt") == str(len(delays_s) + 1).encode()
        history = (letter.header("retry.history") or b"").decode().split(";")
        assert len(history) == len(delays_s) + 1
        assert [k for k, _ in letter.headers].count("retry.history") == 1


@settings(max_examples=150)
@given(
    schedule=st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from([b"a", b"b", b"c"])), max_size=10
    ),
    delays_s=delays,
    turns=steps,
)
def test_with_key_order_kept_each_keys_records_end_in_offset_order(
    schedule: list[tuple[int, bytes]], delays_s: tuple[int, ...], turns: list[tuple[int, bool]]
) -> None:
    """With key order kept, for any failure schedule each record still ends exactly once,
    and each key's records end (handled or dead-lettered) in their source offset order,
    also when an earlier record of the key went through every tier."""
    fail_first = [failures for failures, _ in schedule]
    keys = [key for _, key in schedule]
    outcome = simulate(fail_first, keys, delays_s, turns, keep_key_order=True)
    assert sorted(int(r.value or b"") for r in outcome.ended) == list(range(len(schedule)))
    for key in set(keys):
        offsets = [r.original_offset for r in outcome.ended if r.key == key]
        assert offsets == sorted(offsets)


@given(current=st.none() | st.integers(0, 7), tiers=st.integers(1, 8))
def test_a_record_moves_one_tier_on_and_leaves_after_the_last(
    current: int | None, tiers: int
) -> None:
    """Source to tier 0, tier k to k + 1, the last tier to no tier (the dead-letter topic)."""
    if current is not None and current >= tiers:
        current = tiers - 1
    following = next_tier_index(current, tiers)
    expected = 0 if current is None else current + 1
    assert following == (expected if expected < tiers else None)


def test_a_tier_record_without_retry_headers_is_handled_at_once_as_its_own_origin() -> None:
    """A record produced to a tier by hand is not parked for ever: it is due now, its
    attempts are its tier's position plus one, its origin its own coordinates."""
    tiers = TierMap(RetryTierSettings(delays_s=(5, 60)), [SOURCE])
    consumer, pauses = TierConsumer(), PauseReasons()
    gate = TierGate(
        tiers,
        pauses,
        ConsumerStats(),
        pause=consumer.pause,
        seek=consumer.seek,
        resume=consumer.resume,
        wall_ms=lambda: 5_000,
        monotonic=lambda: 5.0,
    )
    message = Message(f"{SOURCE}.retry.1m", 0, 4, b"k", b"v", (("other", b"x"),), None)
    [admitted] = gate.admit(TopicPartition(message.topic, 0), [message])
    record = record_of(admitted)
    assert (record.attempt, record.original_topic, record.original_offset) == (2, message.topic, 4)
    assert consumer.paused == set()
    assert pauses.held_partitions == frozenset()
