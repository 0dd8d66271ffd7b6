"""The Kafka consumer actor, `KafkaConsumerActor`, and its machinery, one concern a module.

actor          KafkaConsumerActor: the supervised child; wires the parts below per incarnation

settings       ConsumerSettings and event_hubs_profile: validated, frozen configuration
client_config  settings -> aiokafka consumer / dead-letter producer keyword arguments
loop           one incarnation: fetch, dispatch, commit, pause, rebalance, exit
dispatcher     runs queued records in lanes, at most max_in_flight at a time
lanes          which records may run together (ordering) and which start next
handover       one unit (a record or a batch) through dedup, the handler, its booking
failures       failed handler calls: retries in place, auth refresh, refusal, dead-letter
batches        batch handlers and the result naming their failed records
handler_calls  calling the user's handler (async on the loop, sync in a thread)
partitions     owned partitions: trackers, explicit-offset commits, pauses
offsets        the committable watermark of one partition (out-of-order completion)
dead_letter    dead-letter headers and the acknowledged dead-letter writer
deliveries     retry-tier produces not yet acknowledged, which hold the commit back
dedup          the bounded window of handled trace ids and reading them from records
poison         the poison-storm guard
stall          the stall watchdog's decision
pauses         pause reasons (idempotent pause/resume commands)
state          what outlives an incarnation (stats, dedup, pauses, breaker, budget)
stats          the live counters and their immutable snapshot
"""

from actors.consumer.actor import KafkaConsumerActor
from actors.consumer.batches import BatchHandler, BatchResult, batch_handler
from actors.consumer.client_config import consumer_kwargs, producer_kwargs
from actors.consumer.handler_calls import Handler
from actors.consumer.loop import PartitionCommand
from actors.consumer.settings import (
    ConsumerSettings,
    DedupSettings,
    PoisonGuardSettings,
    RetryBudgetSettings,
    event_hubs_profile,
)
from actors.consumer.state import HANDLER_BREAKER, ConsumerState
from actors.consumer.stats import ConsumerStats, ConsumerStatsSnapshot
from actors.messages import Record

__all__ = [
    "HANDLER_BREAKER",
    "BatchHandler",
    "BatchResult",
    "ConsumerSettings",
    "ConsumerState",
    "ConsumerStats",
    "ConsumerStatsSnapshot",
    "DedupSettings",
    "Handler",
    "KafkaConsumerActor",
    "PartitionCommand",
    "PoisonGuardSettings",
    "Record",
    "RetryBudgetSettings",
    "batch_handler",
    "consumer_kwargs",
    "event_hubs_profile",
    "producer_kwargs",
]
