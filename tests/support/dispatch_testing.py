"""Driving the consumer's dispatcher without a broker: real machinery, records built here.

Everything but the broker is the consumer's own: settings, state, breaker, retry
budget, failure path, hand-over, lanes, offset trackers. Records are aiokafka
ConsumerRecords built by the test; refusals hold a pause as the loop does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiokafka.structs import ConsumerRecord

from actors.consumer.dead_letter import DeadLetterWriter
from actors.consumer.deliveries import PendingDeliveries
from actors.consumer.dispatcher import Dispatcher
from actors.consumer.failures import FailurePath, Refusal
from actors.consumer.handler_calls import Callee, HandlerRunner
from actors.consumer.handover import Handover
from actors.consumer.pauses import PauseReasons
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record
from core.resilience.backoff import RetryConfig
from core.resilience.circuit_breaker import CircuitBreakerConfig
from core.types import ErrorCategory

MAX_ATTEMPTS = 3


def offline_settings(**overrides: Any) -> ConsumerSettings:
    """Immediate retries, a breaker that never opens, dead-lettering off (no broker)."""
    values: dict[str, Any] = {
        "bootstrap_servers": "127.0.0.1:9",
        "topics": ("orders",),
        "group_id": "dispatch-test",
        "dead_letter_topic": None,
        "retry": RetryConfig(max_attempts=MAX_ATTEMPTS, base_delay_s=0.0, max_delay_s=0.0),
        "breaker": CircuitBreakerConfig(failure_threshold=1_000_000),
    }
    return ConsumerSettings(**(values | overrides))


def message(
    offset: int,
    trace_id: str | None = None,
    *,
    key: bytes | None = None,
    partition: int = 0,
    topic: str = "orders",
) -> ConsumerRecord[bytes, bytes]:
    """A fetched record as aiokafka hands it over."""
    headers = (("trace_id", trace_id.encode()),) if trace_id is not None else ()
    return ConsumerRecord(topic, partition, offset, 0, 0, key, b"v", None, 0, 1, headers)


class KeptDeadLetters(DeadLetterWriter):
    """Stands in for the dead-letter producer (no broker here): keeps what it is given."""

    def __init__(self) -> None:
        self.written: list[tuple[int, int]] = []

    async def write(
        self, topic: str, record: Record, error: BaseException, category: ErrorCategory
    ) -> None:
        """Keep the record's partition and offset, as acknowledged at once."""
        self.written.append((record.partition, record.offset))


@dataclass
class Rig:
    """A dispatcher with its state, as the consumer loop builds it."""

    settings: ConsumerSettings
    state: ConsumerState
    dispatcher: Dispatcher
    refusals: list[Refusal] = field(default_factory=list)
    halted: anyio.Event = field(default_factory=anyio.Event)


def rig(
    handler: Callee,
    settings: ConsumerSettings,
    *,
    dead_letters: DeadLetterWriter | None = None,
    pauses: PauseReasons | None = None,
) -> Rig:
    """Build the dispatcher for `handler` under `settings` (refusals pause, as in the loop),
    with `pauses` as the state's pause reasons if given."""
    state = ConsumerState.for_settings(settings)
    if pauses is not None:
        state.pauses = pauses
    runner = HandlerRunner(handler, in_thread=settings.sync_handler_in_thread)
    failures = FailurePath(
        settings, state, dead_letters, None, PendingDeliveries(lambda error: dispatcher.fail(error))
    )
    refusals: list[Refusal] = []
    halted = anyio.Event()

    def refused(refusal: Refusal) -> None:
        refusals.append(refusal)
        state.pauses.hold(refusal.breaker)

    handover = Handover(settings, state, runner, failures, on_refusal=refused)
    dispatcher = Dispatcher(
        settings,
        handover,
        state.pauses,
        state.stats,
        batches=runner.batches,
        progress=lambda: None,
        on_failure=halted.set,
    )
    return Rig(settings, state, dispatcher, refusals, halted)


async def settle(rig_: Rig, done: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll until `done()`, the dispatcher halted on a failure, or a pause left nothing
    running; fails after `seconds`."""
    dispatcher, pauses = rig_.dispatcher, rig_.state.pauses
    with anyio.fail_after(seconds):
        while True:
            if done() or dispatcher.failure is not None:
                break
            if pauses.paused and dispatcher.in_flight == 0:
                break
            await anyio.sleep(0.001)
    with anyio.fail_after(seconds):
        await dispatcher.halt(seconds)
