"""Turn `ConsumerSettings` into the keyword arguments of aiokafka's consumer and producer.

Kept apart from the actor so the mapping is tested directly. Auto-commit is always off
(the actor commits what it finished); the dead-letter producer waits for every in-sync
replica (acks=all) and is idempotent unless `idempotent_producer` is off (Tansu, the
demo's broker, cannot start idempotent producers).

The producer's `max_request_size` is the configured one, raised to the consumer's
`max_partition_fetch_bytes` plus `DEAD_LETTER_HEADER_ROOM` when that is larger: a record
the consumer fetched must always be dead-letterable (or forwardable), and its copy
carries the dlq.* headers on top of its own bytes. A dead-letter copy still refused as
too large is cut to fit (actors.consumer.dead_letter).

The producer's batches are up to `PRODUCER_BATCH_BYTES` per partition instead of
aiokafka's 16 KiB. With one produce request in flight per broker, the copies handed over
meanwhile (retry tier copies are not awaited one by one: actors.consumer.deliveries)
wait in their partition's batch; a 16 KiB batch holds about a dozen 1 KiB records, and
every later `send` to that partition then waits for the request in flight, holding its
record's lane, and all of them are woken at its end, most to wait again. A larger batch
only grows as records come (nothing is allocated ahead) and is still sent as soon as the
previous request is answered (`linger_ms` 0).
"""

from __future__ import annotations

import ssl
from typing import Any, Final

from actors.consumer.settings import ConsumerSettings

__all__ = ["DEAD_LETTER_HEADER_ROOM", "PRODUCER_BATCH_BYTES", "consumer_kwargs", "producer_kwargs"]

DEAD_LETTER_HEADER_ROOM: Final = 64 * 1024
"""Bytes allowed beyond a fetched record for the dlq.* headers and the batch overhead
(the headers take about 1.5 KiB: the error message is cut at 1 KiB)."""

PRODUCER_BATCH_BYTES: Final = 256 * 1024
"""One partition's batch in the producer (module docstring), at most the request size;
below the 1 MB a record batch may have on Event Hubs and on Kafka's default
`message.max.bytes`."""


def _connection_kwargs(settings: ConsumerSettings, client_id: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "request_timeout_ms": settings.request_timeout_ms,
        "connections_max_idle_ms": settings.connections_max_idle_ms,
        "metadata_max_age_ms": settings.metadata_max_age_ms,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = settings.ssl_context or ssl.create_default_context()
    if settings.sasl_mechanism is not None:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            kwargs["sasl_oauth_token_provider"] = settings.oauth_token_provider
        else:
            kwargs["sasl_plain_username"] = settings.sasl_username
            kwargs["sasl_plain_password"] = settings.sasl_password
    return kwargs


def consumer_kwargs(settings: ConsumerSettings) -> dict[str, Any]:
    """Arguments for `AIOKafkaConsumer(**kwargs)`; topics are subscribed separately."""
    return {
        **_connection_kwargs(settings, settings.client_id),
        "group_id": settings.group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": settings.auto_offset_reset,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
        "max_poll_records": settings.max_poll_records,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "fetch_min_bytes": settings.fetch_min_bytes,
        "fetch_max_bytes": settings.fetch_max_bytes,
        "max_partition_fetch_bytes": settings.max_partition_fetch_bytes,
    }


def producer_kwargs(settings: ConsumerSettings) -> dict[str, Any]:
    """Arguments for the dead-letter `AIOKafkaProducer(**kwargs)`."""
    request_size = max(
        settings.max_request_size, settings.max_partition_fetch_bytes + DEAD_LETTER_HEADER_ROOM
    )
    return {
        **_connection_kwargs(settings, f"{settings.client_id}-dlq"),
        "acks": "all",
        "enable_idempotence": settings.idempotent_producer,
        "max_request_size": request_size,
        "linger_ms": 0,
        "max_batch_size": min(PRODUCER_BATCH_BYTES, request_size),
    }
