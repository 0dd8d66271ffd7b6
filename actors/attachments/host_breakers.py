"""One circuit breaker per download host, so a dead host pauses the pipeline.

A host that keeps failing (timeouts, refused connections, 5xx, 429) opens its breaker;
the failure that opened it, and every download from the host while it stays open, raise
`CircuitOpenError` (see `downloader`), which the consumer answers by pausing and seeking
back until the breaker's retry-after, instead of spending the record's retry budget and
dead-lettering good records while the host is down.
PERMANENT failures (404, a refused URL, an oversized body) say nothing about the
host's health and do not count (the breaker's own rule).

Breakers are created on first use, named `download:<host>`. The number of hosts is
bounded by `max_hosts`: hosts beyond it share one breaker, `download:other-hosts`, so
events naming endless subdomains of an allowed domain cannot grow memory without
bound. Whoever monitors breakers subscribes with `on_new_breaker`: the callback gets
every breaker that exists and every one created later (in the thread that created it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from core.resilience import CircuitBreaker, CircuitBreakerConfig

__all__ = ["DOWNLOAD_HOST_CIRCUIT_CONFIG", "OVERFLOW_BREAKER_NAME", "HostBreakers"]

DOWNLOAD_HOST_CIRCUIT_CONFIG: Final = CircuitBreakerConfig(
    failure_threshold=5, recovery_timeout_s=30.0, half_open_max_calls=1, success_threshold=1
)
"""Five failures in a row (after the consumer's own retries of each record) mean the host
is down; probe again after 30 s with one download; one success proves it serves again."""

OVERFLOW_BREAKER_NAME: Final = "download:other-hosts"

NewBreakerListener = Callable[[CircuitBreaker], object]


class HostBreakers:
    """The breakers of the download hosts, created on first use (thread-safe)."""

    def __init__(
        self,
        config: CircuitBreakerConfig = DOWNLOAD_HOST_CIRCUIT_CONFIG,
        *,
        max_hosts: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_hosts < 1:
            raise ValueError(f"max_hosts must be >= 1, got {max_hosts!r}")
        self.config = config
        self.max_hosts = max_hosts
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[NewBreakerListener] = []
        self._lock = threading.Lock()

    def for_host(self, host: str) -> CircuitBreaker:
        """The breaker of `host` (a normalised host name)."""
        breaker = self._breakers.get(host)
        if breaker is not None:
            return breaker
        with self._lock:
            key = host if len(self._breakers) < self.max_hosts else OVERFLOW_BREAKER_NAME
            breaker = self._breakers.get(key)
            if breaker is not None:
                return breaker
            name = key if key == OVERFLOW_BREAKER_NAME else f"download:{host}"
            breaker = CircuitBreaker(name, self.config, clock=self._clock)
            self._breakers[key] = breaker
            listeners = tuple(self._listeners)
        for listener in listeners:
            listener(breaker)
        return breaker

    def on_new_breaker(self, listener: NewBreakerListener) -> None:
        """Call `listener(breaker)` for every breaker now and for each one created later."""
        with self._lock:
            self._listeners.append(listener)
            existing = tuple(self._breakers.values())
        for breaker in existing:
            listener(breaker)

    def breakers(self) -> list[CircuitBreaker]:
        """Every breaker created so far."""
        with self._lock:
            return list(self._breakers.values())
