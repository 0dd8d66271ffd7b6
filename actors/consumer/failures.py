"""What failed handler calls lead to: retries, a token refresh, a pause, a dead letter.

The hand-over (actors.consumer.handover) makes a unit's first handler call itself; when
it fails, `FailurePath.settle` takes the unit over. A unit is one record, or a batch of
one partition's records (actors.consumer.batches). Each failed record's error category
(core.errors.classify_exception, or a domain classifier asked first) decides:

| a record fails with    | the consumer                                                  |
|------------------------|---------------------------------------------------------------|
| TRANSIENT or UNKNOWN   | retries it in place, in its lane, after a backoff (the retry  |
|                        | settings, the shared RetryBudget); once spent, the consumer   |
|                        | must exit with a TransientError: the supervisor restarts it   |
|                        | and the record is delivered again from the last commit; but   |
|                        | if the failures opened the handler's breaker, the record is   |
|                        | refused instead (the dependency is down, not the record)      |
| AUTH                   | sends RefreshRequest(auth_scope) to the token refresher,      |
|                        | awaits its `done`, retries; once spent (or with no refresher) |
|                        | the consumer must exit with the error                         |
| CIRCUIT_OPEN           | refused: a Refusal names the breaker and its retry-after; the |
|                        | record goes back to the front of its lane, starts pause       |
| PERMANENT              | written to the dead-letter topic (acknowledged) and finished; |
|                        | with dead-lettering off, the consumer must exit with a        |
|                        | PermanentError                                                |
| ConfigurationError     | (PERMANENT, but the deployment's fault, not the record's: a   |
|                        | table or store that refuses everything) the consumer must     |
|                        | exit with it; nothing is dead-lettered                        |

With retry tiers (actors.consumer.retry_tiers), TRANSIENT and UNKNOWN end differently:
once the in-place retries are spent (or at the first failure, when
`after_in_place_attempts` is off) the record is produced to its next tier and finished
as RETRY_SCHEDULED once handed to the producer (the commit covering it awaits the
acknowledgement: actors.consumer.deliveries), or, after the last tier, dead-lettered
with its retry history (with dead-lettering off, the consumer must exit with a
TransientError, as without tiers); the consumer goes on. An open handler breaker still
refuses instead: the dependency is down, and parking every record in a tier would only
move the outage there.

A batch call that raises fails every record of the batch with that error; when it is
PERMANENT, the batch is split in halves, each tried again, so that only the records
that fail on their own are dead-lettered. The retry loop is explicit (`_settle`): each
retry calls the handler again on the records still failing; the policy is with_retry's
(attempts, full-jitter backoff, a `retry_after` honoured, one retry of the budget per
retry, AUTH retried at once after a refresh).

"Must exit" is `MustExitError(error)`: the dispatcher stops starting records, lets those in
flight finish, and the consumer exits with `error` after committing what is finished.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from actors.consumer.dead_letter import DeadLetterWriter
from actors.consumer.deliveries import PendingDeliveries
from actors.consumer.retry_tiers.naming import Tier
from actors.consumer.retry_tiers.sender import TierSender
from actors.consumer.settings import ConsumerSettings
from actors.consumer.state import ConsumerState
from actors.messages import Record, RefreshRequest
from core.errors import ConfigurationError, PermanentError, TransientError
from core.resilience.backoff import compute_delay
from core.resilience.circuit_breaker import CircuitState
from core.resilience.retry import with_retry
from core.types import ErrorCategory

__all__ = [
    "Attempt",
    "FailurePath",
    "MustExitError",
    "Outcome",
    "Refusal",
    "Settlement",
    "TokenRefreshAsk",
    "where",
]

_log = logging.getLogger(__name__)

_RETRIED = (ErrorCategory.TRANSIENT, ErrorCategory.UNKNOWN, ErrorCategory.AUTH)
_TIERED = (ErrorCategory.TRANSIENT, ErrorCategory.UNKNOWN)


class Outcome(enum.Enum):
    """How a record left the hand-over: its offset may be committed."""

    HANDLED = "handled"
    DEAD_LETTERED = "dead_lettered"
    DEDUPLICATED = "deduplicated"
    RETRY_SCHEDULED = "retry_scheduled"
    """Handed to the producer for a retry tier (acknowledged before the commit covering
    it); it is handled again from there."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The record was not handled: breaker `breaker` refused it for `retry_after` seconds."""

    breaker: str
    retry_after: float


class MustExitError(Exception):
    """The consumer must stop and exit with `error` (for the supervisor to decide)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class Attempt:
    """How one handler call on some of a unit's records failed: the whole call raised
    `whole`, or the handler named the records that failed (`each`, by position)."""

    whole: Exception | None = None
    each: Mapping[int, Exception] = field(default_factory=dict)

    def errors(self, positions: Sequence[int]) -> dict[int, Exception]:
        """The error of each failed position among `positions`."""
        if self.whole is not None:
            return dict.fromkeys(positions, self.whole)
        return {p: e for p, e in self.each.items() if p in positions}


Call = Callable[[Sequence[int]], Awaitable[Attempt | None]]
"""Calls the handler on the unit's records at the given positions; None: all handled."""


@dataclass(slots=True)
class Settlement:
    """What became of a unit's failed records: an outcome by position; the positions
    without one were refused by `refusal` (they go back to their lane)."""

    outcomes: dict[int, Outcome] = field(default_factory=dict)
    refusal: Refusal | None = None


def where(record: Record) -> str:
    """`topic[partition]@offset`, for messages about one record."""
    return f"{record.topic}[{record.partition}]@{record.offset}"


class FailurePath:
    """Settles the records of a unit whose first call failed (see the module docstring)."""

    def __init__(
        self,
        settings: ConsumerSettings,
        state: ConsumerState,
        dead_letters: DeadLetterWriter | None,
        refresh_requests: MemoryObjectSendStream[RefreshRequest] | None,
        deliveries: PendingDeliveries,
    ) -> None:
        """`deliveries` holds the retry tiers' produces until they are acknowledged."""
        self._settings = settings
        self._retry = settings.retry
        self._state = state
        self._stats = state.stats
        self._dead_letters = dead_letters
        self._write_dead_letter = (
            with_retry(settings.retry)(dead_letters.write) if dead_letters is not None else None
        )
        self._rng = random.Random()
        self._tiers: TierSender | None = None
        self._send_to_tier: Callable[[Record, Exception | None, Tier], Awaitable[None]] | None
        self._send_to_tier = None
        if settings.retry_tiers.enabled and dead_letters is not None:
            self._tiers = TierSender(settings.tier_map, dead_letters, deliveries, state.stats)
            self._send_to_tier = with_retry(settings.retry)(self._tiers.send)
        self._tiers_at_once = not settings.retry_tiers.after_in_place_attempts
        self.keys_in_retry = state.keys_in_retry if self._tiers is not None else None
        """The keys whose later records are held back (None: key order is not kept)."""
        self._refresh: TokenRefreshAsk | None = None
        if refresh_requests is not None and settings.auth_scope is not None:
            self._refresh = TokenRefreshAsk(
                refresh_requests, settings.auth_scope, settings.refresh_timeout_s
            )

    async def settle(self, records: Sequence[Record], first: Attempt, call: Call) -> Settlement:
        """Retry, dead-letter or refuse the failed records of `records`, whose first call
        failed as `first`; the others were handled. Raises MustExitError when the consumer must
        stop."""
        settlement = Settlement()
        await self._settle(records, list(range(len(records))), first, call, settlement)
        return settlement

    async def _settle(
        self,
        records: Sequence[Record],
        positions: list[int],
        failure: Attempt,
        call: Call,
        settlement: Settlement,
    ) -> None:
        """The retry loop over `positions` (one record, a batch, or half of one)."""
        attempts = 1
        while True:
            errors = failure.errors(positions)
            for position in positions:
                if position not in errors:
                    settlement.outcomes[position] = Outcome.HANDLED
            retrying: list[int] = []
            retrying_category = ErrorCategory.UNKNOWN  # the first retried record's
            for position, error in errors.items():
                category = self._state.classifier.classify(error)
                if category is not ErrorCategory.CIRCUIT_OPEN:
                    self._stats.failed += 1
                if category is ErrorCategory.CIRCUIT_OPEN:
                    settlement.refusal = self._refusal(error)
                elif category is ErrorCategory.PERMANENT:
                    if isinstance(error, ConfigurationError):
                        raise MustExitError(error)
                    if failure.whole is not None and len(positions) > 1:
                        await self._bisect(records, positions, call, settlement)
                        return
                    await self._dead_letter(records[position], error, category)
                    settlement.outcomes[position] = Outcome.DEAD_LETTERED
                else:
                    if not retrying:
                        retrying_category = category
                    retrying.append(position)
            if not retrying or settlement.refusal is not None:
                return  # refused: what is left goes back to its lane
            error, category = errors[retrying[0]], retrying_category
            tiered = self._tiers is not None and category in _TIERED
            if tiered and self._tiers_at_once:
                await self._to_tiers(records, retrying, errors, category, settlement)
                return
            delay = self._delay_before_retry(error, category, attempts)
            if delay is None:
                if tiered:
                    await self._to_tiers(records, retrying, errors, category, settlement)
                    return
                settlement.refusal = self._give_up(records[retrying[0]], error, category, attempts)
                return
            if category is ErrorCategory.AUTH and self._refresh is not None:
                await self._refresh(error)
            await anyio.sleep(delay)
            attempts += 1
            self._stats.retried += len(retrying)
            positions = retrying
            retried = await call(positions)
            if retried is None:
                for position in positions:
                    settlement.outcomes[position] = Outcome.HANDLED
                return
            failure = retried

    async def _bisect(
        self, records: Sequence[Record], positions: list[int], call: Call, settlement: Settlement
    ) -> None:
        """A whole batch failed PERMANENT: try each half on its own, down to single records."""
        middle = len(positions) // 2
        for half in (positions[:middle], positions[middle:]):
            failure = await call(half)
            if failure is None:
                for position in half:
                    settlement.outcomes[position] = Outcome.HANDLED
            else:
                await self._settle(records, half, failure, call, settlement)
            if settlement.refusal is not None:
                return

    def _delay_before_retry(
        self, error: Exception, category: ErrorCategory, attempts: int
    ) -> float | None:
        """Seconds to wait before the next attempt; None: give up (as with_retry decides)."""
        if category not in _RETRIED or attempts >= self._retry.max_attempts:
            return None
        if category is ErrorCategory.AUTH and self._refresh is None:
            return None
        if not self._state.retry_budget.try_acquire_retry():
            _log.debug("retry budget exhausted; giving up after %r", error)
            return None
        retry_after = getattr(error, "retry_after", None)
        if not isinstance(retry_after, int | float) or not 0 <= retry_after < float("inf"):
            retry_after = None
        if category is ErrorCategory.AUTH:
            return float(retry_after or 0.0)
        return compute_delay(self._retry, attempts - 1, retry_after, self._rng)

    def _give_up(
        self, record: Record, error: Exception, category: ErrorCategory, attempts: int
    ) -> Refusal:
        """Retries are spent: a refusal when the handler's breaker opened, else MustExitError."""
        if category is ErrorCategory.AUTH:
            raise MustExitError(error)
        breaker = self._state.breaker
        if breaker.state is CircuitState.OPEN:
            return Refusal(breaker.name, breaker.retry_after())
        raise _transient_exit(record, f"after {attempts} attempt(s): {type(error).__name__}", error)

    async def _to_tiers(
        self,
        records: Sequence[Record],
        positions: list[int],
        errors: dict[int, Exception],
        category: ErrorCategory,
        settlement: Settlement,
    ) -> None:
        """Send each failed record on to its next tier, or after the last to the dead-letter
        topic; refused instead while the handler's breaker is open (module docstring)."""
        tiers, send = self._tiers, self._send_to_tier
        assert tiers is not None  # only called with tiers on
        assert send is not None
        breaker = self._state.breaker
        if breaker.state is CircuitState.OPEN:
            settlement.refusal = Refusal(breaker.name, breaker.retry_after())
            return
        for position in positions:
            record, error = records[position], errors[position]
            tier = tiers.next_tier(record)
            if tier is None:
                if self._settings.dead_letter_topic is None:
                    raise _transient_exit(
                        record,
                        f"after its last retry tier ({type(error).__name__}) "
                        "and dead-lettering is off",
                        error,
                    )
                await self._dead_letter(tiers.final_headers(record, error), error, category)
                settlement.outcomes[position] = Outcome.DEAD_LETTERED
                continue
            await send(record, error, tier)
            if self.keys_in_retry is not None:
                self.keys_in_retry.sent(record, tier.index)
            settlement.outcomes[position] = Outcome.RETRY_SCHEDULED
            _log.info(
                "sent %s to retry tier %s (due in %d s): %s",
                where(record),
                tier.topic,
                tier.delay_s,
                type(error).__name__,
            )

    async def held_back(self, record: Record) -> bool:
        """With key order kept: True when `record` was sent to its key's tier instead of
        being handled (actors.consumer.retry_tiers.keys; acknowledged before the commit
        covering it)."""
        keys, tiers, send = self.keys_in_retry, self._tiers, self._send_to_tier
        if keys is None or tiers is None or send is None:
            return False
        index = keys.hold_back(record)
        if index is None:
            return False
        tier = tiers.tier(record, index)
        await send(record, None, tier)
        keys.sent(record, index)
        _log.info("held %s back behind its key in %s (key order)", where(record), tier.topic)
        return True

    def _refusal(self, exc: Exception) -> Refusal:
        """Which breaker refused (the handler's, or one inside the handler) and for how long."""
        breaker = getattr(exc, "breaker_name", None) or self._state.breaker.name
        retry_after = getattr(exc, "retry_after", None)
        if not isinstance(retry_after, int | float):
            retry_after = self._settings.breaker.recovery_timeout_s
        return Refusal(breaker, float(retry_after))

    async def _dead_letter(self, record: Record, exc: Exception, category: ErrorCategory) -> None:
        topic = self._settings.dead_letter_topic_for(record.topic)
        write = self._write_dead_letter
        if topic is None or write is None:
            exit_error = PermanentError(
                f"record {where(record)} failed permanently ({type(exc).__name__}) "
                "and dead-lettering is off"
            )
            exit_error.__cause__ = exc
            raise MustExitError(exit_error)
        await write(topic, record, exc, category)
        self._stats.dead_lettered += 1
        _log.warning(
            "dead-lettered %s to %s: %s", where(record), topic, type(exc).__name__, exc_info=exc
        )


def _transient_exit(record: Record, what: str, error: Exception) -> MustExitError:
    """The consumer must exit with a TransientError: the handler failed on `record` `what`
    (the supervisor restarts it and the record is delivered again)."""
    exit_error = TransientError(
        f"handler failed on {where(record)} {what}",
        context={"topic": record.topic, "partition": record.partition},
    )
    exit_error.__cause__ = error
    return MustExitError(exit_error)


class TokenRefreshAsk:
    """Asks the token refresher for a fresh token and waits (bounded) until it tried."""

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
