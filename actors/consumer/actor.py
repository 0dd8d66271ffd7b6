"""The Kafka consumer actor: aiokafka, manual commits, at-least-once.

    actor = KafkaConsumerActor(settings, handler, state=state, commands=rx, refresh_requests=tx)
    ChildSpec("kafka_consumer", factory=lambda: KafkaConsumerActor(...), shutdown_timeout=...)

`handler(record)` is the user's function, sync or async, given an `actors.messages.Record`;
or a batch handler (`batch_handler`), given a sequence of one partition's records and
returning a `BatchResult` naming the records that failed. Records run concurrently when
`settings.max_in_flight` > 1, in the order `settings.ordering` keeps ("key",
"partition", "none"); the default is one record at a time in partition order.
The machinery lives in `actors.consumer` (one module per concern; read `loop` for the
commit and pause rules, `dispatcher` for how records run, and `failures` for what each
failure category leads to). This module is the public face: the actor, and the names a
wiring or a handler needs.

Restarts: the supervisor builds a fresh actor for every start; what must outlive an
incarnation (stats, dedup window, pause reasons, handler breaker, retry budget, poison
window) is a `ConsumerState` the wiring builds once and passes to each, like the streams.

Stop protocol (supervisor.ChildSpec): `stop()` asks `run` to start no more records; those
in flight get `settings.shutdown_timeout_s` to finish, then the exit path commits what is
finished and leaves the group, bounded by another `shutdown_timeout_s`. Cancellation
takes the same exit path (async handler calls in flight are cancelled; a handler thread
finishes its call, which is booked). Give the ChildSpec a shutdown_timeout above twice
`shutdown_timeout_s` plus the slowest synchronous handler call.
"""

from __future__ import annotations

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.consumer.batches import BatchHandler
from actors.consumer.handler_calls import Handler, HandlerRunner
from actors.consumer.loop import ConsumerLoop, PartitionCommand
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.consumer.stats import ConsumerStats
from actors.messages import RefreshRequest

__all__ = ["KafkaConsumerActor"]


class KafkaConsumerActor:
    """Consumes `settings.topics` as a member of `settings.group_id`, handing records over."""

    def __init__(
        self,
        settings: ConsumerSettings,
        handler: Handler | BatchHandler,
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
        """Ask `run` to start no more records, let those in flight finish, commit, leave
        the group and return."""
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()
