"""Helpers for the Delta sink tests: records of a topic, reading a table back, waiting."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from deltalake import DeltaTable

from actors.messages import Record

TOPIC = "events"


def make_record(partition: int, offset: int, value: bytes | None = None) -> Record:
    """The record at `offset` of `partition`; its value names it unless given."""
    return Record(
        TOPIC,
        partition,
        offset,
        key=f"k{offset}".encode(),
        value=value if value is not None else f"p{partition}o{offset}".encode(),
        headers=(("trace_id", f"t{partition}-{offset}".encode()),),
        timestamp=1_700_000_000_000 + offset,
    )


def rows_per_coordinate(
    table: str | Path, storage_options: dict[str, str] | None = None
) -> Counter[tuple[int, int]]:
    """How often each (partition, offset) is in the table."""
    data = DeltaTable(str(table), storage_options=storage_options).to_pyarrow_table(
        columns=["partition", "offset"]
    )
    return Counter(
        zip(data.column("partition").to_pylist(), data.column("offset").to_pylist(), strict=True)
    )


async def wait_until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll `condition` until it holds; fail after `seconds`."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await anyio.sleep(0.02)
    pytest.fail(f"condition still false after {seconds}s")
