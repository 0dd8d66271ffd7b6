"""The demo's sample stream, its handler, and the ledger that proves nothing was lost.

The stream is deterministic: JSON business events keyed by their id with the id in a
`trace_id` header, and among them

- poison: every `POISON_EVERY`-th record is not JSON; the handler's `orjson.loads` raises
  a ValueError, which is PERMANENT, so the consumer dead-letters it and goes on;
- replays: every `REPLAY_EVERY`-th record repeats an earlier event (same key, so the
  same partition, after the original): the dedup window skips it;
- chaos: record number `CHAOS_AT` makes the handler raise an unclassified (UNKNOWN)
  error on each of its first `attempts` calls. The consumer retries in place, gives up,
  and crashes; the supervisor restarts it, consumption resumes from the last commit,
  and the record then succeeds. One supervised restart, nothing lost.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

import anyio
import orjson

from actors.messages import Record

__all__ = [
    "CHAOS_AT",
    "POISON_EVERY",
    "REPLAY_EVERY",
    "ChaosError",
    "DemoEvent",
    "DemoHandler",
    "DemoLedger",
    "event_stream",
]

POISON_EVERY: Final = 40
REPLAY_EVERY: Final = 25
CHAOS_AT: Final = 60
_REPLAY_DISTANCE: Final = 7
_KINDS: Final = ("order_placed", "payment_received", "parcel_shipped", "invoice_sent")

Kind = Literal["event", "poison", "replay", "chaos"]


@dataclass(frozen=True, slots=True)
class DemoEvent:
    """One record to produce; `event_id` is its trace id (a replay repeats one)."""

    number: int
    kind: Kind
    event_id: str
    value: bytes

    @property
    def key(self) -> bytes:
        return self.event_id.encode()

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return [("trace_id", self.event_id.encode())]


def event_stream(seed: int = 7) -> Iterator[DemoEvent]:
    """The endless, reproducible demo stream (see the module docstring)."""
    rng = random.Random(seed)
    sent: list[DemoEvent] = []
    number = 0
    while True:
        number += 1
        event_id = f"evt-{number:05d}"
        if number % POISON_EVERY == 0:
            event = DemoEvent(
                number, "poison", event_id, b'{"id": "' + event_id.encode() + b'", oops'
            )
        elif number % REPLAY_EVERY == 0 and len(sent) > _REPLAY_DISTANCE:
            original = sent[-_REPLAY_DISTANCE]
            event = DemoEvent(number, "replay", original.event_id, original.value)
        else:
            kind: Kind = "chaos" if number == CHAOS_AT else "event"
            body = {
                "id": event_id,
                "kind": "chaos" if kind == "chaos" else rng.choice(_KINDS),
                "amount": round(rng.uniform(1, 500), 2),
            }
            event = DemoEvent(number, kind, event_id, orjson.dumps(body))
            sent.append(event)
        yield event


@dataclass(slots=True)
class DemoLedger:
    """What was produced and what the handler finished, by event id."""

    produced: int = 0
    poison: int = 0
    replays: int = 0
    expected: set[str] = field(default_factory=set)
    """Ids of the valid events (chaos included): each must be handled."""
    handled: set[str] = field(default_factory=set)

    def record_produced(self, event: DemoEvent) -> None:
        """Count `event` as sent (and acknowledged by the broker)."""
        self.produced += 1
        if event.kind == "poison":
            self.poison += 1
        elif event.kind == "replay":
            self.replays += 1
        else:
            self.expected.add(event.event_id)

    def missing(self) -> set[str]:
        """Valid events produced but not handled (yet)."""
        return self.expected - self.handled


DOWNSTREAM_LATENCY_S: Final = 0.05
"""How long the demo's handler waits per event, standing in for a downstream call."""


class ChaosError(Exception):
    """The demo's deliberate crash: not in the taxonomy, hence UNKNOWN."""


class DemoHandler:
    """Parses each record as JSON and notes its id; fails the chaos event `attempts` times."""

    def __init__(self, ledger: DemoLedger, *, attempts: int) -> None:
        self._ledger = ledger
        self._chaos_left = attempts

    async def __call__(self, record: Record) -> None:
        """Handle one record (a ValueError for poison is the consumer's to dead-letter)."""
        event = orjson.loads(record.value or b"")
        await anyio.sleep(DOWNSTREAM_LATENCY_S)  # the downstream call a real handler makes
        if event["kind"] == "chaos" and self._chaos_left > 0:
            self._chaos_left -= 1
            raise ChaosError(f"chaos: simulated crash on {event['id']} (demo)")
        self._ledger.handled.add(event["id"])
