"""Helpers for the Delta sink tests: records, reading a table back, waiting, Azurite access."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
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


ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (  # Azurite's published development key, the same on every install
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class InjectedFailure:
    """A response the proxy in front of Azurite sends instead of forwarding (None: forward)."""

    status: int | None = None
    reason: str = ""
    code: str = ""


@dataclass(frozen=True)
class Azurite:
    """A running emulator: where it listens, and delta-rs storage options to reach it.

    `failure` makes every request through the proxy fail with a given status and
    Azure error code, as the real service words it (throttling, 5xx, refusals).
    """

    endpoint: str
    failure: InjectedFailure

    def storage_options(self, *, account_key: str | None = ACCOUNT_KEY) -> dict[str, str]:
        options = {"account_name": ACCOUNT, "endpoint": self.endpoint, "allow_http": "true"}
        if account_key is not None:
            options["account_key"] = account_key
        return options

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )
        BlobServiceClient.from_connection_string(connection).create_container(name)
