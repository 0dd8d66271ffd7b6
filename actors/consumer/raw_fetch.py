"""Fetching one partition's record bytes as the broker stores them, through aiokafka's client.

aiokafka parses what it fetches before the caller sees it, and gives nothing of a batch
it cannot parse. To read such a batch anyway the consumer asks the partition's leader
itself, with the same FetchRequest aiokafka's fetcher sends (fetch offset, the consumer's
per-partition byte limit and isolation level) and keeps the response's record bytes.

aiokafka internals relied on (checked against 0.14): `consumer._client` (the AIOKafkaClient the
consumer fetches with: its `cluster.leader_for_partition` and `send`) and the fetcher's
`_max_partition_fetch_bytes` and `_isolation_level`. A client that no longer has them
fails here with AttributeError, not silently.
"""

from __future__ import annotations

from typing import Any, Final

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, LeaderNotAvailableError, for_code
from aiokafka.protocol.fetch import FetchRequest

__all__ = ["fetch_raw"]

MAX_WAIT_MS: Final = 100
"""How long the broker may wait for data at the fetch offset (there is some whenever a
batch failed to parse; a partition at its log end answers empty after this)."""


async def fetch_raw(consumer: Any, tp: TopicPartition, offset: int) -> bytes:
    """The record bytes the leader of `tp` returns for a fetch from `offset` (possibly
    empty, possibly ending mid-batch). Raises the broker's error for the partition as a
    KafkaError, and LeaderNotAvailableError when no leader is known."""
    client = consumer._client
    fetcher = consumer._fetcher
    leader = client.cluster.leader_for_partition(tp)
    if leader is None or leader == -1:
        raise LeaderNotAvailableError(f"no leader known for {tp.topic}[{tp.partition}]")
    limit = fetcher._max_partition_fetch_bytes
    request = FetchRequest(
        MAX_WAIT_MS,
        1,
        limit,
        fetcher._isolation_level,
        [(tp.topic, [(tp.partition, offset, limit)])],
    )
    response = await client.send(leader, request)
    for topic, partitions in response.topics:
        for partition, error_code, _highwater, *data in partitions:
            if (topic, partition) != (tp.topic, tp.partition):
                continue
            error: type[KafkaError] = for_code(error_code)
            if error_code != 0:
                raise error(f"fetching {tp.topic}[{tp.partition}] at offset {offset}")
            records: bytes | None = data[-1]
            return records or b""
    return b""
