"""`KafkaSink`: ship log records to a Kafka topic, one message per record.

The value is the record's formatted line (a JSON object by default), the key its logger's
name, so one logger's records keep their order within a partition. The producer starts on
the first write (and again after `aclose` or a failed start), so constructing the sink
never touches the network. A batch counts as written only once the broker acknowledged
every record; any failure is raised for the shipper to classify and retry, bounded by
`send_timeout` so a broker outage cannot hang the shipper. A single record larger than the
producer's `max_request_size` can never be sent: it is skipped and counted in
`oversized`, so one huge line cannot block (or, being a permanent error, escalate) the
whole log stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from actors.log_shipper.buffer import FormattedRecord
from actors.log_shipper.diagnostics import report

__all__ = ["KafkaSink"]


class KafkaSink:
    """Produces each record's line to `topic`, keyed by logger name.

    `producer_settings` are passed to `aiokafka.AIOKafkaProducer` (security protocol,
    SASL OAUTHBEARER token provider, compression, acks, ...) and override this sink's
    defaults: `linger_ms=10` and a request timeout of `send_timeout`.
    """

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str,
        producer_settings: Mapping[str, Any] | None = None,
        send_timeout: float = 10.0,
    ) -> None:
        self.topic = topic
        self.oversized = 0
        self._send_timeout = send_timeout
        self._settings: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "linger_ms": 10,
            "request_timeout_ms": max(1, int(send_timeout * 1000)),
            **(producer_settings or {}),
        }
        self._producer: AIOKafkaProducer | None = None

    def __repr__(self) -> str:
        return (
            f"KafkaSink({self.topic!r}, bootstrap_servers={self._settings['bootstrap_servers']!r})"
        )

    async def write(self, batch: Sequence[FormattedRecord]) -> None:
        """Send every record and wait until the broker acknowledged all of them."""
        with anyio.fail_after(self._send_timeout):
            producer = await self._started_producer()
            deliveries: list[asyncio.Future[Any]] = []
            for record in batch:
                try:
                    deliveries.append(
                        await producer.send(
                            self.topic, record.line.encode(), key=record.logger.encode()
                        )
                    )
                except MessageSizeTooLargeError:
                    self.oversized += 1
                    report(
                        f"{self!r} skipped a record of logger {record.logger!r}"
                        " larger than max_request_size"
                    )
            outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def aclose(self) -> None:
        """Flush and stop the producer, if one was started."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(**self._settings)
            try:
                await producer.start()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer
