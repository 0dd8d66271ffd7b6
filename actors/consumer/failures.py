"""What a failed handler call leads to: retries, a token refresh, a pause, a dead letter.

The fast path (actors.consumer.records) makes each record's first handler call itself;
when that call raises, `FailurePath.after_failure` takes the record over. The error's
category (core.errors.classify_exception) decides:

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

The retries are `with_retry`'s, unchanged: its wrapper makes the record's first
attempt, and that attempt hands it the fast path's error instead of calling the handler
again, so the policy (backoff, budget, auth refresh) sees exactly one failed first call.
The wrapper also counts the record's call in the retry budget, which is why the fast
path counts only the calls that succeeded.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from actors.consumer.dead_letter import DeadLetterWriter
from actors.consumer.handler_calls import HandlerRunner
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record, RefreshRequest
from core.errors import CircuitOpenError, PermanentError, TransientError, classify_exception
from core.resilience.circuit_breaker import CircuitState
from core.resilience.retry import with_retry
from core.types import ErrorCategory

__all__ = ["FailurePath", "Outcome", "Refusal", "TokenRefreshAsk", "where"]

_log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """How a record that failed once left the failure path: its offset may be committed."""

    HANDLED = "handled"
    """A retry succeeded."""
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Refusal:
    """The record was not handled: breaker `breaker` refused it for `retry_after` seconds."""

    breaker: str
    retry_after: float


def where(record: Record) -> str:
    """`topic[partition]@offset`, for messages about one record."""
    return f"{record.topic}[{record.partition}]@{record.offset}"


class FailurePath:
    """Takes over a record whose first handler call failed (see the module docstring)."""

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
        self._first_error: Exception | None = None
        self._attempts = 0
        refresh = None
        if refresh_requests is not None and settings.auth_scope is not None:
            refresh = TokenRefreshAsk(
                refresh_requests, settings.auth_scope, settings.refresh_timeout_s
            )
        self._retrying = with_retry(
            settings.retry, budget=state.retry_budget, on_auth_error=refresh
        )(self._attempt)
        self._write_dead_letter = with_retry(settings.retry)(self._dead_letter_once)

    async def after_failure(self, record: Record, error: Exception) -> Outcome | Refusal:
        """Retry, dead-letter or refuse `record`, whose first call raised `error`.

        The first call went through the handler's breaker and was timed, but was not
        counted in the retry budget. Raises when the consumer must stop.
        """
        if not isinstance(error, CircuitOpenError):
            self._stats.failed += 1
        self._first_error = error
        self._attempts = 1
        try:
            await self._retrying(record)
        except Exception as exc:
            return await self._failed(record, exc)
        return Outcome.HANDLED

    async def _attempt(self, record: Record) -> None:
        """The first attempt replays the fast path's error; later ones call the handler."""
        first_error, self._first_error = self._first_error, None
        if first_error is not None:
            raise first_error
        self._attempts += 1
        self._stats.retried += 1
        started = time.perf_counter()
        try:
            await self._state.breaker.call_async(self._handler, record)
        except CircuitOpenError:
            raise
        except Exception:
            self._stats.failed += 1
            raise
        finally:
            self._stats.observe_handler(1, time.perf_counter() - started)

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
            f"handler failed on {where(record)} after {self._attempts} attempt(s): "
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
                f"record {where(record)} failed permanently ({type(exc).__name__}) "
                "and dead-lettering is off"
            ) from exc
        await self._write_dead_letter(writer, topic, record, exc, category)
        self._stats.dead_lettered += 1
        _log.warning(
            "dead-lettered %s to %s: %s", where(record), topic, type(exc).__name__, exc_info=exc
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
