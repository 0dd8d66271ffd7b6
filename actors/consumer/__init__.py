"""The Kafka consumer actor, `KafkaConsumerActor`, and its machinery, one concern a module.

actor          KafkaConsumerActor: the supervised child; wires the parts below per incarnation

settings       ConsumerSettings and event_hubs_profile: validated, frozen configuration
client_config  settings -> aiokafka consumer / dead-letter producer keyword arguments
loop           one incarnation: fetch, hand over, commit, pause, rebalance, exit
records        the fast path: a partition's records through dedup and the handler
failures       a failed handler call: retries, auth refresh, refusal, dead-letter
handler_calls  calling the user's handler (async on the loop, sync in a thread)
partitions     owned partitions: trackers, explicit-offset commits, rewinds, pauses
offsets        the committable watermark of one partition
dead_letter    dead-letter headers and the acknowledged dead-letter writer
dedup          the bounded window of handled trace ids and reading them from records
poison         the poison-storm guard
stall          the stall watchdog's decision
pauses         pause reasons (idempotent pause/resume commands)
state          what outlives an incarnation (stats, dedup, pauses, breaker, budget)
stats          the live counters and their immutable snapshot
"""

from actors.consumer.actor import (
    HANDLER_BREAKER,
    ConsumerSettings,
    ConsumerState,
    ConsumerStats,
    ConsumerStatsSnapshot,
    DedupSettings,
    Handler,
    KafkaConsumerActor,
    PartitionCommand,
    PoisonGuardSettings,
    Record,
    RetryBudgetSettings,
    consumer_kwargs,
    event_hubs_profile,
    producer_kwargs,
)

__all__ = [
    "HANDLER_BREAKER",
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
    "consumer_kwargs",
    "event_hubs_profile",
    "producer_kwargs",
]
