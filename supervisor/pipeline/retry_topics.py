"""What the process says and checks about its retry tier topics before it starts.

A tier topic is read and written like any other, so a missing one would not fail
loudly: aiokafka logs that the topic is unknown and retries, records sent to it fail
their produce (the consumer restarts, again and again), and those waiting there are
never read. So `run` and `check-config` ask the broker for its topics first and refuse
a configuration whose tier topic does not exist: a configuration error naming it
(exit 2), as for any other key. A broker that cannot be reached within
`CHECK_TIMEOUT_S` is not a configuration error (it is the consumer's TRANSIENT
business once it runs), so then the check is skipped with a warning.

`describe` is what `check-config` prints: the tier topics, and on Event Hubs (a
bootstrap server in `*.servicebus.windows.net`) that each is an event hub, which a
Standard namespace allows ten of, whose retention must exceed the longest delay.
"""

from __future__ import annotations

import logging
from typing import Final

import anyio
from aiokafka import AIOKafkaConsumer

from actors.consumer.client_config import consumer_kwargs
from actors.consumer.retry_tiers.settings import delay_label
from actors.consumer.settings import ConsumerSettings
from supervisor.pipeline.config_loader import ConfigError

__all__ = ["CHECK_TIMEOUT_S", "check_retry_topics_exist", "describe", "missing_topics"]

_log = logging.getLogger(__name__)

CHECK_TIMEOUT_S: Final = 10.0
EVENT_HUBS_SUFFIX: Final = ".servicebus.windows.net"
EVENT_HUBS_STANDARD_LIMIT: Final = 10


def describe(settings: ConsumerSettings) -> list[str]:
    """Comment lines naming the tier topics (and, on Event Hubs, what each one costs)."""
    tiers = settings.retry_tiers
    if not tiers.enabled:
        return []
    names = settings.tier_map.topics()
    lines = [f"# retry tier topics (must exist): {', '.join(names)}"]
    hosts = [entry.rsplit(":", 1)[0] for entry in settings.bootstrap_servers.split(",")]
    if any(host.strip().lower().endswith(EVENT_HUBS_SUFFIX) for host in hosts):
        longest = delay_label(max(tiers.delays_s))
        lines.append(
            f"# Event Hubs: each tier topic is an event hub ({len(names)} here); a Standard "
            f"namespace allows {EVENT_HUBS_STANDARD_LIMIT} event hubs; each one's retention "
            f"must exceed the longest delay ({longest})"
        )
    return lines


def missing_topics(wanted: list[str], existing: set[str]) -> list[str]:
    """The names of `wanted` that are not among `existing`, in order."""
    return [name for name in wanted if name not in existing]


async def check_retry_topics_exist(settings: ConsumerSettings) -> None:
    """Raise ConfigError naming a tier topic the broker does not have (module docstring)."""
    if not settings.retry_tiers.enabled:
        return
    client = AIOKafkaConsumer(**(consumer_kwargs(settings) | {"group_id": None}))
    existing: set[str] | None = None
    problem = "the broker did not answer in time"
    with anyio.move_on_after(CHECK_TIMEOUT_S):
        try:
            await client.start()
            existing = set(await client.topics())
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
    with anyio.move_on_after(CHECK_TIMEOUT_S, shield=True):
        await client.stop()
    if existing is None:
        _log.warning("retry tier topics not checked (the consumer will be): %s", problem)
        return
    missing = missing_topics(settings.tier_map.topics(), existing)
    if missing:
        raise ConfigError(
            "retry_topics",
            f"tier topic {missing[0]!r} does not exist"
            + (f" (nor {', '.join(map(repr, missing[1:]))})" if missing[1:] else "")
            + ": create it, with a retention above its delay",
        )
