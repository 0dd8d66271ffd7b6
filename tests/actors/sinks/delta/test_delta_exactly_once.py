"""Exactly-once rows: any interleaving of writes, crashes and redeliveries ends with each
record once in the table (real deltalake on a temporary directory)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from delta_testing import make_record, rows_per_coordinate
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actors.sinks.delta import DeltaSink, DeltaSinkSettings

PARTITIONS = 2
RECORDS_PER_PARTITION = 12
GROUP = "orders-to-delta"

Step = tuple[str, int, int, bool]
# One step of the run, for one partition (the last field: Kafka commit afterwards):
#   batch n          the owner writes its next n records (the Delta commit succeeds)
#   crash_before n   the owner fetched n records and dies before the Delta commit
#   crash_after n    the owner writes n records, then dies before the Kafka commit
#   rebalance        the other process takes the partition over from the Kafka offset
#   zombie n         the previous owner, not yet aware, writes its next n records
steps = st.lists(
    st.tuples(
        st.sampled_from(  # weighted toward ownership moving while batches continue
            ["batch"] * 3 + ["crash_before", "crash_after"] + ["rebalance"] * 2 + ["zombie"]
        ),
        st.sampled_from([0, 0, 0, 0, 0, 1]),  # mostly one partition: denser interleavings
        st.integers(1, 5),
        st.booleans(),
    ),
    max_size=16,
)


@dataclass
class Process:
    """One pipeline process: its sink (fresh after a restart) and fetch positions."""

    table: str
    sink: DeltaSink = field(init=False)
    position: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """A new process: nothing cached, nothing fetched."""
        self.sink = DeltaSink(DeltaSinkSettings(table=self.table), group_id=GROUP)
        self.position.clear()

    async def write_next(self, partition: int, count: int, committed: int) -> None:
        """Write the next `count` records after this process's position (or the Kafka offset)."""
        start = self.position.get(partition, committed)
        offsets = range(start, min(start + count, RECORDS_PER_PARTITION))
        if offsets:
            await self.sink([make_record(partition, offset) for offset in offsets])
            self.position[partition] = offsets[-1] + 1


async def run(table: str, plan: list[Step]) -> None:
    """Play `plan` with two processes, then let the last owners drain every partition."""
    processes = [Process(table), Process(table)]
    owner = dict.fromkeys(range(PARTITIONS), 0)
    committed = dict.fromkeys(range(PARTITIONS), 0)  # Kafka's committed offset
    for step, partition, count, kafka_commit in plan:
        current = processes[owner[partition]]
        if step in ("batch", "crash_after"):
            await current.write_next(partition, count, committed[partition])
        if step in ("crash_before", "crash_after"):
            current.restart()
        elif step == "rebalance":
            owner[partition] = 1 - owner[partition]
            current = processes[owner[partition]]
            current.position.pop(partition, None)  # the new owner starts at the Kafka offset
        elif step == "zombie":
            previous = processes[1 - owner[partition]]
            if partition in previous.position:  # only a process that had fetched it
                await previous.write_next(partition, count, committed[partition])
        if kafka_commit and step != "zombie":  # a zombie's commit is refused by the group
            committed[partition] = current.position.get(partition, committed[partition])
    for partition in range(PARTITIONS):
        final = processes[owner[partition]]
        final.restart()
        while final.position.get(partition, committed[partition]) < RECORDS_PER_PARTITION:
            await final.write_next(partition, 5, committed[partition])
            committed[partition] = final.position[partition]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
@example(  # a stale cached offset: the other process wrote the partition meanwhile
    plan=[
        ("batch", 0, 5, False),
        ("rebalance", 0, 1, False),
        ("batch", 0, 5, False),
        ("batch", 0, 3, True),
        ("rebalance", 0, 1, False),
        ("batch", 0, 5, False),
        ("batch", 0, 5, True),
    ]
)
def test_every_record_is_in_the_table_exactly_once(plan: list[Step]) -> None:
    """Whatever writes, crashes, rebalances and zombie writes happen, each record is in once."""
    with tempfile.TemporaryDirectory() as directory:
        table = str(Path(directory) / "table")
        anyio.run(run, table, plan)
        counts = rows_per_coordinate(table)
    expected = {(p, o) for p in range(PARTITIONS) for o in range(RECORDS_PER_PARTITION)}
    assert set(counts) == expected
    assert [key for key, count in counts.items() if count != 1] == []
