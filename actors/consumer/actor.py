"""The Kafka consumer actor: aiokafka, manual commits, at-least-once.

    actor = KafkaConsumerActor(settings, handler, state=state, commands=rx, refresh_requests=tx)
    ChildSpec("kafka_consumer", factory=lambda: KafkaConsumerActor(...), shutdown_timeout=...)

`handler(record)` is the user's function, sync or async, given an `actors.messages.Record`.
The machinery lives beside it in `actors.consumer` (one module per concern; read `loop`
for the commit and pause rules and `records` for what each failure category leads to).
This module holds the actor and gathers the names a wiring or a handler needs; the
package `actors.consumer` re-exports them.

Restarts: the supervisor builds a fresh actor for every start; what must outlive an
incarnation (stats, dedup window, pause reasons, handler breaker, retry budget, poison
window) is a `ConsumerState` the wiring builds once and passes to each, like the streams.

Stop protocol (supervisor.ChildSpec): `stop()` asks `run` to finish the record in hand
and return; on the way out it commits what is finished and leaves the group, bounded by
`settings.shutdown_timeout_s`. Cancellation takes the same exit path (the handler call
in hand is cancelled; a handler thread finishes the call in hand, not its whole batch).
Give the ChildSpec a shutdown_timeout above the slowest handler call plus
`shutdown_timeout_s`.
"""

from __future__ import annotations

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.consumer.client_config import consumer_kwargs, producer_kwargs
from actors.consumer.handler_calls import Handler, HandlerRunner
from actors.consumer.loop import ConsumerLoop, PartitionCommand
from actors.consumer.settings import (
    ConsumerSettings,
    DedupSettings,
    PoisonGuardSettings,
    RetryBudgetSettings,
    event_hubs_profile,
)
from actors.consumer.state import HANDLER_BREAKER, ConsumerState
from actors.consumer.stats import ConsumerStats, ConsumerStatsSnapshot
from actors.messages import Record, RefreshRequest

__all__ = [
    "HANDLER_BREAKER",
    "ConsumerSettings",
    "ConsumerState",
    "ConsumerStats",
    "ConsumerStatsSnapshot",
    "DedupSettings",
    "Handler",
    "KafkaConsumerActor",
    "PartitionCommand",
    "PoisonGuardSettings",
    "Record",
    "RetryBudgetSettings",
    "consumer_kwargs",
    "event_hubs_profile",
    "producer_kwargs",
]


class KafkaConsumerActor:
    """Consumes `settings.topics` as a member of `settings.group_id`, handing records over."""

    def __init__(
        self,
        settings: ConsumerSettings,
        handler: Handler,
        *,
        state: ConsumerState | None = None,
        commands: MemoryObjectReceiveStream[PartitionCommand] | None = None,
        refresh_requests: MemoryObjectSendStream[RefreshRequest] | None = None,
    ) -> None:
        self.settings = settings
        self.state = state or ConsumerState.for_settings(settings)
        self._handler = HandlerRunner(handler, in_thread=settings.sync_handler_in_thread)
        self._commands = commands
        self._refresh_requests = refresh_requests
        self._stop_requested = False
        self._stop: anyio.Event | None = None

    @property
    def stats(self) -> ConsumerStats:
        """The live counters (shared with every incarnation through the state)."""
        return self.state.stats

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Consume until `stop()`; raises when the supervisor must decide (see actors.consumer)."""
        self._stop = anyio.Event()
        if self._stop_requested:
            self._stop.set()
        self.state.stats.starts += 1
        loop = ConsumerLoop(
            self.settings,
            self.state,
            self._handler,
            stop=self._stop,
            commands=self._commands,
            refresh_requests=self._refresh_requests,
        )
        await loop.run(task_status=task_status)

    def stop(self) -> None:
        """Ask `run` to finish the record in hand, commit, leave the group and return."""
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()
