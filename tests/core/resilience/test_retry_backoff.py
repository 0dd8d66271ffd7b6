"""RetryConfig validation and the backoff schedule of compute_delay."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.resilience import AUTH_RETRY, DEFAULT_RETRY, RetryConfig, compute_delay
from core.resilience.backoff import backoff_ceilings


@st.composite
def retry_configs(draw: st.DrawFn, jitter: bool | None = None) -> RetryConfig:
    """Any valid RetryConfig."""
    base_delay_s = draw(st.floats(0.0, 10.0))
    return RetryConfig(
        max_attempts=draw(st.integers(1, 10)),
        base_delay_s=base_delay_s,
        max_delay_s=draw(st.floats(base_delay_s, 120.0)),
        exponential_base=draw(st.floats(1.0, 4.0)),
        jitter=draw(st.booleans()) if jitter is None else jitter,
    )


retry_afters = st.none() | st.floats(0.0, 1000.0)
attempts = st.integers(0, 2000)


def test_default_config_is_the_documented_one() -> None:
    """RetryConfig() makes 3 attempts, waits from 0.5 s doubling up to 30 s, with jitter."""
    assert dataclasses.astuple(RetryConfig()) == (3, 0.5, 30.0, 2.0, True)
    assert RetryConfig() == DEFAULT_RETRY


def test_auth_preset_retries_once() -> None:
    """AUTH_RETRY allows a single retry: one refresh of the credentials, then one more try."""
    assert AUTH_RETRY.max_attempts == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("base_delay_s", -0.1),
        ("base_delay_s", math.nan),
        ("base_delay_s", math.inf),
        ("max_delay_s", 0.1),
        ("max_delay_s", math.inf),
        ("exponential_base", 0.5),
        ("exponential_base", math.nan),
    ],
)
def test_invalid_config_is_rejected_naming_the_field(field: str, value: float) -> None:
    """Out-of-range values raise ValueError naming the field (max_delay_s below base_delay_s
    too)."""
    with pytest.raises(ValueError, match=field):
        RetryConfig(**{field: value})


def test_config_is_immutable() -> None:
    """A config cannot be changed after creation, so presets stay as documented."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_RETRY.max_attempts = 10  # type: ignore[misc]


def test_negative_attempt_is_rejected() -> None:
    """Attempt numbers start at 0; a negative one is a caller's bug."""
    with pytest.raises(ValueError, match="attempt"):
        compute_delay(DEFAULT_RETRY, -1, None, random.Random(0))


@given(config=retry_configs(), attempt=attempts, retry_after=retry_afters, seed=st.integers())
def test_delay_is_bounded_by_max_delay_unless_retry_after_asks_more(
    config: RetryConfig, attempt: int, retry_after: float | None, seed: int
) -> None:
    """Every delay lies in [retry_after or 0, max(max_delay_s, retry_after)]."""
    delay = compute_delay(config, attempt, retry_after, random.Random(seed))
    floor = retry_after or 0.0
    assert floor <= delay <= max(config.max_delay_s, floor)


@given(config=retry_configs(), attempt=st.integers(0, 60), seed=st.integers())
def test_jittered_delay_stays_below_its_exponential_ceiling(
    config: RetryConfig, attempt: int, seed: int
) -> None:
    """Full jitter draws from [0, base * exp**attempt], which is also capped by max_delay_s."""
    delay = compute_delay(config, attempt, None, random.Random(seed))
    assert (
        0.0
        <= delay
        <= min(config.max_delay_s, config.base_delay_s * config.exponential_base**attempt)
    )


@given(config=retry_configs(jitter=False), attempt=st.integers(0, 60))
def test_without_jitter_each_delay_grows_by_the_base_until_the_cap(
    config: RetryConfig, attempt: int
) -> None:
    """Without jitter the schedule is base_delay_s, then times exponential_base, capped."""
    rng = random.Random(0)
    first = compute_delay(config, 0, None, rng)
    this = compute_delay(config, attempt, None, rng)
    following = compute_delay(config, attempt + 1, None, rng)
    assert first == config.base_delay_s
    assert following == pytest.approx(min(config.max_delay_s, this * config.exponential_base))


@given(config=retry_configs(), attempt=attempts, retry_after=st.floats(0.0, 1000.0))
def test_retry_after_above_the_backoff_is_waited_exactly(
    config: RetryConfig, attempt: int, retry_after: float
) -> None:
    """When the dependency asks for more than the backoff ceiling, that is the delay."""
    no_jitter = dataclasses.replace(config, jitter=False)
    ceiling = compute_delay(no_jitter, attempt, None, random.Random(0))
    if retry_after >= ceiling:
        assert compute_delay(config, attempt, retry_after, random.Random(1)) == retry_after


@given(config=retry_configs())
def test_precomputed_ceilings_are_the_jitter_free_delays_of_each_retry(config: RetryConfig) -> None:
    """backoff_ceilings gives, per retry, the delay compute_delay would wait without jitter."""
    no_jitter = dataclasses.replace(config, jitter=False)
    expected = [compute_delay(no_jitter, n, None, random.Random(0)) for n in range(50)]
    ceilings = backoff_ceilings(config)
    assert list(ceilings) == expected[: config.max_attempts - 1]


def test_precomputed_ceilings_are_bounded_for_endless_retries() -> None:
    """A config retrying (nearly) forever precomputes a few ceilings, not one per attempt."""
    endless = RetryConfig(max_attempts=10**9)
    ceilings = backoff_ceilings(endless)
    assert 0 < len(ceilings) < 1000
    assert ceilings == backoff_ceilings(
        dataclasses.replace(endless, max_attempts=len(ceilings) + 1)
    )


def test_huge_attempt_numbers_do_not_overflow() -> None:
    """Attempt 10 000 gives max_delay_s (no OverflowError), or 0 when base_delay_s is 0."""
    no_jitter = RetryConfig(jitter=False)
    assert compute_delay(no_jitter, 10_000, None, random.Random(0)) == no_jitter.max_delay_s
    zero = RetryConfig(base_delay_s=0.0, max_delay_s=0.0, jitter=False)
    assert compute_delay(zero, 10_000, None, random.Random(0)) == 0.0


def test_integer_exponential_base_overflowing_a_float_is_capped() -> None:
    """An int base raised to a huge attempt (too big for a float) still caps at max_delay_s."""
    config = RetryConfig(exponential_base=2, jitter=False)
    assert compute_delay(config, 5_000, None, random.Random(0)) == config.max_delay_s


def test_seeded_rng_reproduces_the_schedule() -> None:
    """The same seed gives the same jittered schedule, so tests can pin one."""
    first = [compute_delay(DEFAULT_RETRY, n, None, random.Random(7)) for n in range(5)]
    second = [compute_delay(DEFAULT_RETRY, n, None, random.Random(7)) for n in range(5)]
    assert first == second


def test_full_jitter_spreads_delays_over_the_whole_range() -> None:
    """Delays for the same attempt spread from near 0 to near the ceiling (no clustering)."""
    config = RetryConfig(base_delay_s=1.0, max_delay_s=1.0)
    rng = random.Random(3)
    delays = [compute_delay(config, 0, None, rng) for _ in range(1000)]
    assert min(delays) < 0.05
    assert max(delays) > 0.95
    assert 0.4 < sum(delays) / len(delays) < 0.6
