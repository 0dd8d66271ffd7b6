"""One record's way through the consumer: dedup, the handler, and what its failure means.

The failure's category (core.errors.classify_exception) decides:

| handler fails with     | the consumer                                                  |
|------------------------|---------------------------------------------------------------|
| TRANSIENT or UNKNOWN   | retries in place (with_retry, shared RetryBudget); once spent, |
|                        | raises TransientError: the supervisor restarts the consumer   |
|                        | and the record is delivered again from the last commit;       |
|                        | but if the failures opened the handler's breaker, returns a   |
|                        | Refusal instead (the dependency is down, not the record)      |
| AUTH                   | sends RefreshRequest(auth_scope) to the token refresher,      |
|                        | awaits its `done`, retries; once spent, re-raises the error   |
| CIRCUIT_OPEN           | returns a Refusal naming the breaker and its retry-after: the |
|                        | caller pauses and seeks back to the record until then         |
| PERMANENT              | writes it to the dead-letter topic (acknowledged) and returns |
|                        | DEAD_LETTERED; with dead-lettering off, raises PermanentError |

Each handler call runs inside the handler's circuit breaker and the record's
KafkaLogContext. A record's trace id is remembered in the dedup window only after its
handler succeeded.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from actors.consumer.dead_letter import DeadLetterWriter
from actors.consumer.dedup import UnreadableTraceIdError
from actors.consumer.handler import HandlerRunner
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record, RefreshRequest
from core.errors import CircuitOpenError, PermanentError, TransientError, classify_exception
from core.logging.kafka_context import KafkaLogContext
from core.resilience.circuit_breaker import CircuitState
from core.resilience.retry import with_retry
from core.types import ErrorCategory

__all__ = ["Outcome", "RecordProcessor", "Refusal", "TokenRefreshAsk"]

_log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """How a finished record left the processor: its offset may be committed."""

    HANDLED = "handled"
    SKIPPED = "skipped"
    """Its trace id was handled recently (dedup)."""
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Refusal:
    """The record was not handled: breaker `breaker` refused it for `retry_after` seconds."""

    breaker: str
    retry_after: float


def _where(record: Record) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


class RecordProcessor:
    """Takes one record at a time through dedup, the handler and the failure rules above."""

    def __init__(
        self,
        settings: ConsumerSettings,
        state: ConsumerState,
        handler: HandlerRunner,
        dead_letters: DeadLetterWriter | None,
        refresh_requests: MemoryObjectSendStream[RefreshRequest] | None,
    ) -> None:
        self._settings = settings
        self._state = state
        self._stats = state.stats
        self._handler = handler
        self._dead_letters = dead_letters
        self._attempts = 0
        refresh = None
        if refresh_requests is not None and settings.auth_scope is not None:
            refresh = TokenRefreshAsk(
                refresh_requests, settings.auth_scope, settings.refresh_timeout_s
            )
        self._call_handler = with_retry(
            settings.retry, budget=state.retry_budget, on_auth_error=refresh
        )(self._attempt)
        self._write_dead_letter = with_retry(settings.retry)(self._dead_letter_once)

    async def process(self, record: Record) -> Outcome | Refusal:
        """Handle `record` once, or say why it was not; raises when the consumer must stop."""
        with KafkaLogContext(
            record.topic, record.partition, record.offset, self._settings.group_id
        ):
            trace_id = self._trace_id(record)
            dedup = self._state.dedup
            if trace_id is not None and dedup is not None and dedup.contains(trace_id):
                self._stats.deduplicated += 1
                return Outcome.SKIPPED
            self._attempts = 0
            try:
                await self._call_handler(record)
            except Exception as exc:
                return await self._failed(record, exc)
            self._stats.handled += 1
            if trace_id is not None and dedup is not None:
                dedup.remember(trace_id)
            self._state.poison.observe(dead_lettered=False)
            return Outcome.HANDLED

    def raise_if_poison_storm(self) -> None:
        """Raise PermanentError when too many of the latest records were dead-lettered."""
        poison = self._state.poison
        if poison.storming():
            raise PermanentError(poison.describe(), context={"group_id": self._settings.group_id})

    def _trace_id(self, record: Record) -> str | None:
        reader = self._state.trace_ids
        if reader is None:
            return None
        try:
            return reader.read(record.value, record.headers)
        except UnreadableTraceIdError as exc:
            self._stats.dedup_undecodable += 1
            _log.debug("no dedup for %s: %s", _where(record), exc)
            return None

    async def _attempt(self, record: Record) -> None:
        self._attempts += 1
        if self._attempts > 1:
            self._stats.retried += 1
        try:
            await self._state.breaker.call_async(self._handler, record)
        except CircuitOpenError:
            raise
        except Exception:
            self._stats.failed += 1
            raise

    async def _failed(self, record: Record, exc: Exception) -> Outcome | Refusal:
        category = classify_exception(exc)
        if category is ErrorCategory.CIRCUIT_OPEN:
            return self._refusal(exc)
        if category is ErrorCategory.PERMANENT:
            await self._dead_letter(record, exc, category)
            return Outcome.DEAD_LETTERED
        if category is ErrorCategory.AUTH:
            raise exc
        breaker = self._state.breaker
        if breaker.state is CircuitState.OPEN:
            return Refusal(breaker.name, breaker.retry_after())
        raise TransientError(
            f"handler failed on {_where(record)} after {self._attempts} attempt(s): "
            f"{type(exc).__name__}",
            context={"topic": record.topic, "partition": record.partition},
        ) from exc

    def _refusal(self, exc: Exception) -> Refusal:
        """Which breaker refused (the handler's, or one inside the handler) and for how long."""
        breaker = getattr(exc, "breaker_name", None) or self._state.breaker.name
        retry_after = getattr(exc, "retry_after", None)
        if not isinstance(retry_after, int | float):
            retry_after = self._settings.breaker.recovery_timeout
        return Refusal(breaker, float(retry_after))

    async def _dead_letter(self, record: Record, exc: Exception, category: ErrorCategory) -> None:
        topic = self._settings.dead_letter_topic_for(record.topic)
        writer = self._dead_letters
        if topic is None or writer is None:
            raise PermanentError(
                f"record {_where(record)} failed permanently ({type(exc).__name__}) "
                "and dead-lettering is off"
            ) from exc
        await self._write_dead_letter(writer, topic, record, exc, category)
        self._stats.dead_lettered += 1
        self._state.poison.observe(dead_lettered=True)
        _log.warning(
            "dead-lettered %s to %s: %s", _where(record), topic, type(exc).__name__, exc_info=exc
        )

    @staticmethod
    async def _dead_letter_once(
        writer: DeadLetterWriter,
        topic: str,
        record: Record,
        exc: Exception,
        category: ErrorCategory,
    ) -> None:
        await writer.write(topic, record, exc, category)


class TokenRefreshAsk:
    """`on_auth_error` for with_retry: ask the token refresher, wait (bounded) until it tried."""

    def __init__(
        self, requests: MemoryObjectSendStream[RefreshRequest], scope: str, timeout: float
    ) -> None:
        self._requests = requests
        self._scope = scope
        self._timeout = timeout

    async def __call__(self, error: Exception) -> None:
        """Send a RefreshRequest for the scope and wait for its `done`."""
        request = RefreshRequest(self._scope, reason=f"handler failed with {type(error).__name__}")
        try:
            await self._requests.send(request)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            _log.warning("the token refresher is gone; retrying without a refresh")
            return
        with anyio.move_on_after(self._timeout):
            await request.done.wait()
