"""The tier gate: a tier record is handed over only once it is due; until then its
partition is paused, never slept on.

Every fetched batch of a tier partition passes `TierGate.admit`. The records are in
offset order and were produced with non-decreasing due times (a tier has one delay and
records are produced to it in time order; a partition's head is its earliest), so the
records that are due form a prefix. The prefix is handed over; from the first record
that is not due, nothing is (nor read): the partition is sought back to that record (aiokafka
drops what it fetched beyond) and paused, its pause held in the pause reasons until
the head's due time. The fetch loop asks `resume_due` on every turn, so a resume is at
most one poll interval late. A record is therefore never handed over before it is
due, whatever was prefetched: anything beyond the head is fetched again after the
resume and passes the gate again.

Rebalances: aiokafka forgets pauses and the owned partitions drop the held one on
revocation. The next owner (this process again, or another) fetches from the committed
offset, which is at most the head (the head and what follows were never tracked, so
the commit cannot pass them), and the gate parks it again. The pause survives because
it is re-derived from the record, not remembered.

With key order kept (actors.consumer.retry_tiers.keys), `resume_due` also pauses every
owned source partition while the keys in retry are at their bound, and resumes them
once a key left: the tiers go on meanwhile, which is what lets keys leave.

A record whose due time is a clock skew away (produced by a member whose clock runs
ahead) waits at most that skew: the due time is absolute, epoch milliseconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import TopicPartition

from actors.consumer.pauses import PauseReasons
from actors.consumer.retry_tiers.headers import read_retry_state
from actors.consumer.retry_tiers.keys import KeysInRetry
from actors.consumer.retry_tiers.naming import TierMap
from actors.consumer.stats import ConsumerStats
from actors.messages import Record

__all__ = ["TierGate", "TierMessage"]

_log = logging.getLogger(__name__)


class TierMessage:
    """A fetched tier record with what its retry headers say; the hand-over makes the
    handler's Record of it (`to_record`), with the attempt and the origin."""

    __slots__ = (
        "attempt",
        "due_ms",
        "headers",
        "key",
        "offset",
        "origin",
        "partition",
        "timestamp",
        "topic",
        "value",
    )

    def __init__(self, message: Any, attempt: int, origin: tuple[str, int, int], due_ms: int):
        self.topic: str = message.topic
        self.partition: int = message.partition
        self.offset: int = message.offset
        self.key: bytes | None = message.key
        self.value: bytes | None = message.value
        self.headers: tuple[tuple[str, bytes], ...] = tuple(message.headers)
        self.timestamp: int | None = message.timestamp
        self.attempt = attempt
        self.origin = origin
        self.due_ms = due_ms

    def to_record(self) -> Record:
        """The handler's Record of it."""
        return Record(
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            self.headers,
            self.timestamp,
            self.attempt,
            self.origin,
        )


class TierGate:
    """Admits the due prefix of tier batches and pauses the rest (see the module docstring)."""

    def __init__(
        self,
        tiers: TierMap,
        pauses: PauseReasons,
        stats: ConsumerStats,
        *,
        pause: Callable[[TopicPartition], None],
        seek: Callable[[TopicPartition, int], None],
        resume: Callable[[TopicPartition], None],
        keys: KeysInRetry | None = None,
        sources: Callable[[], Iterable[TopicPartition]] = list,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tiers = tiers
        self._pauses = pauses
        self._stats = stats
        self._pause = pause
        self._seek = seek
        self._resume = resume
        self._keys = keys
        self._sources = sources
        self._wall_ms = wall_ms
        self._monotonic = monotonic

    def __contains__(self, topic: object) -> bool:
        return topic in self._tiers

    def admit(self, tp: TopicPartition, messages: Sequence[Any]) -> list[TierMessage]:
        """The records of `messages` (one tier partition's, in offset order) that are due;
        the partition is parked at the first that is not (the records after it are not
        even read: they are fetched again after the resume)."""
        tier = self._tiers.tier_of(tp.topic)
        assert tier is not None  # only tier partitions come here
        now_ms = self._wall_ms()
        admitted: list[TierMessage] = []
        for message in messages:
            state = read_retry_state(message.headers)
            if state is None:
                _log.warning(
                    "%s[%d]@%d has no readable retry headers: handled now, as its own origin",
                    message.topic,
                    message.partition,
                    message.offset,
                )
                origin = (message.topic, message.partition, message.offset)
                admitted.append(TierMessage(message, tier.index + 1, origin, now_ms))
                continue
            if state.due_ms > now_ms:
                self._park(tp, message.offset, state.due_ms - now_ms)
                break
            admitted.append(TierMessage(message, state.attempt, state.origin, state.due_ms))
        if admitted:
            stats = self._stats
            stats.tier_retried[tp.topic] = stats.tier_retried.get(tp.topic, 0) + len(admitted)
            for tier_message in admitted:
                stats.due_lag_seconds_sum += (now_ms - tier_message.due_ms) / 1000
            stats.due_lag_seconds_count += len(admitted)
        return admitted

    def _park(self, tp: TopicPartition, offset: int, wait_ms: int) -> None:
        """Seek `tp` back to `offset` and pause it alone for `wait_ms`."""
        self._seek(tp, offset)
        self._pauses.hold_partition((tp.topic, tp.partition), self._monotonic() + wait_ms / 1000)
        self._pause(tp)
        _log.debug("%s[%d]: parked at %d for %d ms", tp.topic, tp.partition, offset, wait_ms)

    def resume_due(self) -> None:
        """Resume every parked tier partition whose head is due by now; hold or release
        the source partitions by the bound on keys in retry."""
        for topic, partition in self._pauses.due_partitions(self._monotonic()):
            self._pauses.lift_partition((topic, partition))
            self._resume(TopicPartition(topic, partition))
        if self._keys is not None:
            self._hold_sources(self._keys.full)

    def _hold_sources(self, full: bool) -> None:
        pauses = self._pauses
        for tp in self._sources():
            if tp.topic in self._tiers:
                continue
            key = (tp.topic, tp.partition)
            if full and not pauses.holds_partition(key):
                pauses.hold_partition(key, float("inf"))
                self._pause(tp)
                _log.warning("%s[%d]: paused, the keys kept in order are at their bound", *key)
            elif not full and pauses.holds_partition(key):
                pauses.lift_partition(key)
                self._resume(tp)
