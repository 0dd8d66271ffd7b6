"""Resilience: a circuit breaker per dependency, and retries with backoff and a budget.

Both decide through the error taxonomy (`core.errors.classify_exception`): only
failures a retry could fix are retried or held against a dependency.
"""

from core.resilience.backoff import AUTH_RETRY, DEFAULT_RETRY, RetryConfig, compute_delay
from core.resilience.circuit_breaker import CircuitBreaker
from core.resilience.circuit_config import (
    DEFAULT_CIRCUIT_CONFIG,
    KAFKA_CIRCUIT_CONFIG,
    KUSTO_CIRCUIT_CONFIG,
    ONELAKE_CIRCUIT_CONFIG,
    CircuitBreakerConfig,
)
from core.resilience.circuit_listeners import CircuitListener
from core.resilience.circuit_state import CircuitState, CircuitStats
from core.resilience.retry import with_retry
from core.resilience.retry_budget import RetryBudget

__all__ = [
    "AUTH_RETRY",
    "DEFAULT_CIRCUIT_CONFIG",
    "DEFAULT_RETRY",
    "KAFKA_CIRCUIT_CONFIG",
    "KUSTO_CIRCUIT_CONFIG",
    "ONELAKE_CIRCUIT_CONFIG",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitListener",
    "CircuitState",
    "CircuitStats",
    "RetryBudget",
    "RetryConfig",
    "compute_delay",
    "with_retry",
]
