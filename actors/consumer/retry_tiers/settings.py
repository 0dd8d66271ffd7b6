"""Retry tier settings: the delays, how tier topics are named, when a record goes to a tier.

Delays are written as durations (`"30s"`, `"5m"`, `"1h"`, `"2d"`): a whole number and
one unit, because the delay also names the tier's topic (`orders.retry.5m`) and one
spelling per delay keeps the names stable. Each is at least `MIN_DELAY_S` (a shorter
delay is an in-place retry, which `[retry]` already does without a topic) and at most
`MAX_DELAY_S` (a topic's retention must outlast its delay; a week is already longer
than most retentions). At most `MAX_TIERS` tiers: each is a topic (an event hub on
Event Hubs, where a Standard namespace allows ten). Delays need not increase: a flat
schedule (`["1m", "1m", "1m"]`) is a fixed-interval retry, so two tiers may share a
delay only if the pattern still tells them apart, which `{index}` does; names that
collide are refused.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Final

from core.errors import ConfigurationError

__all__ = [
    "MAX_DELAY_S",
    "MAX_KEYS_IN_RETRY",
    "MAX_TIERS",
    "MIN_DELAY_S",
    "RetryTierSettings",
    "delay_label",
    "parse_delay",
]

MIN_DELAY_S: Final = 1
MAX_DELAY_S: Final = 7 * 86_400
MAX_TIERS: Final = 8
MAX_KEYS_IN_RETRY: Final = 10_000_000
_UNITS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION: Final = re.compile(r"(\d{1,7})([smhd])")
_PLACEHOLDERS: Final = frozenset({"topic", "delay", "index"})


def parse_delay(text: str) -> int:
    """Seconds of a duration such as "30s", "5m", "1h" or "2d" (ValueError naming it)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as '30s', '5m', '1h' or '2d'")
    seconds = int(match[1]) * _UNITS[match[2]]
    if not MIN_DELAY_S <= seconds <= MAX_DELAY_S:
        raise ValueError(f"{text!r} is outside {MIN_DELAY_S} s..7 d")
    return seconds


def delay_label(seconds: int) -> str:
    """The one spelling of a delay in topic names: the largest unit that divides it."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _require(condition: bool, name: str, problem: str) -> None:
    if not condition:
        raise ConfigurationError(
            f"consumer setting retry_tiers.{name}: {problem}",
            context={"field": f"retry_tiers.{name}", "problem": problem},
        )


@dataclass(frozen=True, slots=True)
class RetryTierSettings:
    """Delayed retries through tier topics (actors.consumer.retry_tiers); off without delays."""

    delays_s: tuple[int, ...] = ()
    """The tiers' delays in seconds, in the order a record passes them."""
    topic_pattern: str = "{topic}.retry.{delay}"
    """A tier's topic: `{topic}` the source topic, `{delay}` the delay's label ("30s"),
    `{index}` the tier's position from 0."""
    after_in_place_attempts: bool = True
    """True: a TRANSIENT or UNKNOWN failure goes to the next tier once the in-place
    retries (`retry`) are spent; False: at its first failure."""
    preserve_key_order: bool = False
    """Send a source record whose key has a record in a tier to that tier too, instead of
    handling it, so a key's records are handled in order (actors.consumer.retry_tiers.keys)."""
    max_keys_in_retry: int = 10_000
    """Keys tracked for `preserve_key_order`; at the bound, fetching waits (nothing is
    lost, no key's order is given up) until a key leaves."""

    def __post_init__(self) -> None:
        _require(
            len(self.delays_s) <= MAX_TIERS,
            "delays",
            f"{len(self.delays_s)} tiers; at most {MAX_TIERS}",
        )
        for delay in self.delays_s:
            _require(
                isinstance(delay, int) and MIN_DELAY_S <= delay <= MAX_DELAY_S,
                "delays",
                f"got {delay!r} s; each in {MIN_DELAY_S}..{MAX_DELAY_S} s",
            )
        _require(
            1 <= self.max_keys_in_retry <= MAX_KEYS_IN_RETRY,
            "max_keys_in_retry",
            f"got {self.max_keys_in_retry}; allowed: 1..{MAX_KEYS_IN_RETRY}",
        )
        try:
            parts = [p for p in string.Formatter().parse(self.topic_pattern) if p[1] is not None]
        except ValueError:
            parts = [("", "?", "", None)]
        fields = {name for _, name, _, _ in parts}
        _require(
            fields <= _PLACEHOLDERS and all(spec == "" and not conv for _, _, spec, conv in parts),
            "topic_pattern",
            f"{self.topic_pattern!r} may use only the placeholders {{topic}}, {{delay}}, {{index}}",
        )
        _require(
            "topic" in fields and ("delay" in fields or "index" in fields),
            "topic_pattern",
            f"{self.topic_pattern!r} must contain {{topic}} and {{delay}} (or {{index}})",
        )

    @property
    def enabled(self) -> bool:
        """Whether any tier is configured."""
        return bool(self.delays_s)

    def topic(self, source: str, index: int) -> str:
        """The topic of tier `index` for records of `source`."""
        delay = self.delays_s[index]
        return self.topic_pattern.format(topic=source, delay=delay_label(delay), index=index)
