"""A circuit breaker shared by many threads: no lost counts, ordered events, bounded trials."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator

import pytest
from clocks import ManualClock
from resilience_fakes import TransitionLog

from core.errors import CircuitOpenError, TransientError
from core.resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState

THREADS = 8
CALLS_PER_THREAD = 3000


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads every few microseconds so races get their chance."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def dependency(*, fail: bool) -> int:
    """A call that fails transiently when told to."""
    if fail:
        raise TransientError("flaky")
    return 1


def test_hammered_breaker_counts_every_call_and_orders_its_events() -> None:
    """Under contention every outcome is counted exactly once and listeners see a valid chain."""
    breaker = CircuitBreaker(
        "shared",
        CircuitBreakerConfig(
            failure_threshold=3,
            recovery_timeout_s=0.0005,
            half_open_max_calls=2,
            success_threshold=2,
        ),
    )
    log = TransitionLog()
    breaker.add_listener(log)
    start = threading.Barrier(THREADS)
    outcomes = [[0, 0, 0] for _ in range(THREADS)]  # returned, failed, rejected

    def worker(index: int) -> None:
        rng = random.Random(index)
        tally = outcomes[index]
        start.wait()
        for _ in range(CALLS_PER_THREAD):
            try:
                tally[0] += breaker.call(dependency, fail=rng.random() < 0.3)
            except TransientError:
                tally[1] += 1
            except CircuitOpenError:
                tally[2] += 1

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    returned, failed, rejected = (sum(column) for column in zip(*outcomes, strict=True))
    stats = breaker.stats
    assert (stats.successes, stats.failures, stats.rejections) == (returned, failed, rejected)
    assert stats.total_calls == THREADS * CALLS_PER_THREAD
    assert rejected > 0, "the breaker never opened: the test exercised nothing"
    transitions = log.transitions
    assert len(transitions) == stats.state_changes
    previous = CircuitState.CLOSED
    for old, new in transitions:
        assert old is previous
        previous = new
    assert previous is stats.state


def test_concurrent_callers_get_at_most_the_allowed_trials(clock: ManualClock) -> None:
    """Of many threads arriving at a half-open breaker, exactly half_open_max_calls get in."""
    breaker = CircuitBreaker(
        "shared", CircuitBreakerConfig(failure_threshold=1, half_open_max_calls=3), clock=clock
    )
    breaker.record_failure(TransientError("down"))
    clock.advance(breaker.config.recovery_timeout_s)
    release = threading.Event()
    admitted = threading.Semaphore(0)
    rejected: list[CircuitOpenError] = []
    start = threading.Barrier(THREADS)

    def trial() -> None:
        admitted.release()
        release.wait()

    def worker() -> None:
        start.wait()
        try:
            breaker.call(trial)
        except CircuitOpenError as exc:
            rejected.append(exc)
            turned_away.release()

    turned_away = threading.Semaphore(0)
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        assert admitted.acquire(timeout=5)
    for _ in range(THREADS - 3):
        assert turned_away.acquire(timeout=5)
    assert not admitted.acquire(timeout=0)
    release.set()
    for thread in threads:
        thread.join()
    assert not admitted.acquire(timeout=0)
    assert breaker.state is CircuitState.CLOSED
