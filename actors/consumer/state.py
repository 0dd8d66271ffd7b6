"""What outlives one incarnation of the consumer actor.

The supervisor builds a fresh actor for every start, so anything that must survive a
restart is owned by the wiring and handed to each incarnation, like the streams:

- the stats, so counters and gauges are continuous;
- the dedup window: after a crash the records since the last commit are delivered
  again, and the window is what recognises the ones already handled;
- the pause reasons, since a restart must not resume partitions the breaker monitor
  paused;
- the handler's circuit breaker (the breaker monitor listens to it) and the retry
  budget, so a crash loop neither resets the breaker nor refills the budget;
- the poison guard's window, so restarts do not hide a storm;
- the keys with records in retry tiers (with `preserve_key_order`), so a consumer
  restart within the process keeps holding back their later records;
- the error classifier (the built-in rules, or a domain's first and those after it),
  which the failure path and the handler's breaker judge failures by.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.consumer.dedup import DedupWindow, TraceIdReader
from actors.consumer.pauses import PauseReasons
from actors.consumer.poison import PoisonGuard
from actors.consumer.retry_tiers.keys import KeysInRetry
from actors.consumer.settings import ConsumerSettings
from actors.consumer.stats import ConsumerStats
from core.errors import DefaultErrorClassifier
from core.resilience.circuit_breaker import CircuitBreaker
from core.resilience.retry_budget import RetryBudget
from core.types import ErrorClassifier

__all__ = ["HANDLER_BREAKER", "ConsumerState"]

HANDLER_BREAKER = "handler"
"""Name of the handler's circuit breaker (and of the pause reason it causes)."""


@dataclass(slots=True)
class ConsumerState:
    """The consumer's long-lived parts; build one with `for_settings` and share it."""

    stats: ConsumerStats
    breaker: CircuitBreaker
    retry_budget: RetryBudget
    poison: PoisonGuard
    pauses: PauseReasons = field(default_factory=PauseReasons)
    dedup: DedupWindow | None = None
    trace_ids: TraceIdReader | None = None
    classifier: ErrorClassifier = field(default_factory=DefaultErrorClassifier)
    keys_in_retry: KeysInRetry | None = None

    @classmethod
    def for_settings(
        cls,
        settings: ConsumerSettings,
        *,
        stats: ConsumerStats | None = None,
        breaker: CircuitBreaker | None = None,
        classifier: ErrorClassifier | None = None,
    ) -> ConsumerState:
        """Fresh state as `settings` describe it; pass `stats` or `breaker` to share
        yours, `classifier` (core.errors.compose_classifier) to judge failures by."""
        classifier = classifier or DefaultErrorClassifier()
        dedup = settings.dedup
        window = reader = None
        if dedup.enabled:
            window = DedupWindow(dedup.capacity, ttl=dedup.ttl_s)
            if dedup.json_field:
                reader = TraceIdReader("json_field", dedup.json_field)
            else:
                reader = TraceIdReader("header", dedup.header or "")
        budget = settings.retry_budget
        return cls(
            stats=stats or ConsumerStats(),
            breaker=breaker
            or CircuitBreaker(HANDLER_BREAKER, settings.breaker, classifier=classifier),
            retry_budget=RetryBudget(
                ratio=budget.ratio,
                window=budget.window_s,
                min_retries_per_window=budget.min_retries_per_window,
            ),
            poison=PoisonGuard(
                window=settings.poison.window,
                max_share=settings.poison.max_share,
                min_sample=settings.poison.min_sample,
            ),
            dedup=window,
            trace_ids=reader,
            classifier=classifier,
            keys_in_retry=(
                KeysInRetry(settings.tier_map, settings.retry_tiers.max_keys_in_retry)
                if settings.retry_tiers.enabled and settings.retry_tiers.preserve_key_order
                else None
            ),
        )
