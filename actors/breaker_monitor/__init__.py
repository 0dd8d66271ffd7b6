"""The breaker monitor actor: the one decider of pauses caused by circuit breakers.

monitor         BreakerMonitorActor: breaker state changes -> Pause/ResumePartitions
_thread_bridge  hands listener calls from worker threads to the event loop
"""

from actors.breaker_monitor.monitor import (
    BreakerHealth,
    BreakerMonitorActor,
    PartitionCommand,
)

__all__ = [
    "BreakerHealth",
    "BreakerMonitorActor",
    "PartitionCommand",
]
