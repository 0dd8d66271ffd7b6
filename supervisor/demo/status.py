"""What the demo prints: the live one-line status and the closing summary.

Both read the same `Observation` as /metrics, plus the demo's ledger, so what the demo
shows is what a Prometheus scrape of the same process would show.
"""

from __future__ import annotations

from supervisor.demo.events import DemoLedger
from supervisor.pipeline.observation import Observation
from supervisor.pipeline.wiring import KAFKA_CONSUMER

__all__ = ["Notes", "lag_text", "restarts_by_actor", "status_line", "summary_lines"]


def restarts_by_actor(observation: Observation) -> dict[str, int]:
    """Restarts per actor, only those that were restarted."""
    return {name: child.restarts for name, child in observation.actors.items() if child.restarts}


class Notes:
    """Lines worth a moment's attention: each supervised restart, the first dead letter."""

    def __init__(self, dead_letter_topic: str) -> None:
        self._dead_letter_topic = dead_letter_topic
        self._restarts: dict[str, int] = {}
        self._dead_lettered = 0

    def update(self, observation: Observation) -> list[str]:
        """The notes about what changed since the previous observation."""
        notes = []
        for name, count in restarts_by_actor(observation).items():
            if count > self._restarts.get(name, 0):
                last_exit = observation.actors[name].last_exit
                notes.append(
                    f">> supervisor restarted {name} (exit: {last_exit}; restart {count});"
                    " consumption resumes from the last commit"
                )
            self._restarts[name] = count
        dead_lettered = observation.consumer.dead_lettered
        if dead_lettered and not self._dead_lettered:
            notes.append(
                f">> a poison record failed permanently and went to {self._dead_letter_topic};"
                " the stream goes on"
            )
        self._dead_lettered = dead_lettered
        return notes


def status_line(observation: Observation, ledger: DemoLedger, elapsed: float) -> str:
    """One line: produced, consumed, in flight, handled, dead-lettered, deduplicated,
    restarts, breaker, lag (see `lag_text`)."""
    consumer = observation.consumer
    breakers = ", ".join(state.value for state in observation.breakers.values()) or "-"
    return (
        f"{elapsed:5.1f}s | produced {ledger.produced} | consumed {consumer.consumed}"
        f" | in flight {consumer.in_flight} | handled {consumer.handled}"
        f" | dead-lettered {consumer.dead_lettered}"
        f" | deduplicated {consumer.deduplicated}"
        f" | restarts {sum(restarts_by_actor(observation).values())}"
        f" | breaker {breakers} | lag {lag_text(observation)}"
    )


def lag_text(observation: Observation) -> str:
    """The total lag, or "?" when it is not known: the consumer is not running (it is
    being restarted), has no partition assigned (joining the group), or has not yet
    measured every assigned partition. Its lag table is emptied when partitions are
    revoked, so a sum then would read 0 while records wait."""
    consumer = observation.consumer
    actor = observation.actors.get(KAFKA_CONSUMER)
    measured = consumer.assigned and consumer.assigned <= consumer.lag.keys()
    if actor is None or not actor.running or not measured:
        return "?"
    return str(sum(consumer.lag[partition] for partition in consumer.assigned))


def summary_lines(
    observation: Observation,
    ledger: DemoLedger,
    *,
    dead_letter_topic: str,
    dead_letter_records: int,
    logs: str,
) -> list[str]:
    """The closing summary; its last content line says whether anything was lost."""
    consumer = observation.consumer
    restarts = restarts_by_actor(observation)
    missing = ledger.missing()
    lines = [
        "summary",
        f"  produced        {ledger.produced} records: {len(ledger.expected)} valid events,"
        f" {ledger.poison} poison, {ledger.replays} replays",
        f"  handled         {consumer.handled}",
        f"  dead-lettered   {consumer.dead_lettered}"
        f" ({dead_letter_topic} holds {dead_letter_records})",
        f"  deduplicated    {consumer.deduplicated} (replays, and records delivered again"
        " after a restart)",
        "  restarts        "
        + (", ".join(f"{name} x{count}" for name, count in restarts.items()) or "0"),
    ]
    if missing:
        lines.append(
            f"  not handled     {len(missing)} of {len(ledger.expected)} valid events before the"
            f" stop (first: {min(missing)}); not committed either, so the group gets them next"
        )
    else:
        lines.append(
            f"  nothing lost    every one of the {len(ledger.expected)} valid events was handled"
        )
    lines.append(f"  logs            {logs}")
    return lines
