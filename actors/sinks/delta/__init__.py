"""Exactly-once rows in a Delta table: a batch sink on delta-rs, idempotent per partition.

Kafka delivers at least once: after a crash, the records after the last committed
offset come again. This sink turns that into exactly-once rows: each batch of one
partition is one Delta commit that also records "this partition is in up to offset N"
(a Delta transaction identifier, app id `group/topic/partition`, version N), and
records at or below the recorded offset are dropped before writing. See
actors.sinks.delta.sink for the protocol and its cache, actors.sinks.delta.table for why
the cache is safe under rebalances, actors.sinks.delta.columns for the table's columns,
actors.sinks.delta.batch_handler for how the consumer's batches reach it.

The guarantee covers the rows of this table only: another handler's side effects, or
another table written by the same records, are not part of the commit.
"""

from actors.sinks.delta.batch_handler import DeltaBatchHandler
from actors.sinks.delta.outcome import BatchOutcome, RecordFailure
from actors.sinks.delta.settings import DeltaSinkSettings, ExtraColumns
from actors.sinks.delta.sink import DeltaSink, build_delta_sink

__all__ = [
    "BatchOutcome",
    "DeltaBatchHandler",
    "DeltaSink",
    "DeltaSinkSettings",
    "ExtraColumns",
    "RecordFailure",
    "build_delta_sink",
]
