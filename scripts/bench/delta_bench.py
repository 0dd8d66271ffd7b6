"""Rows per second into a local Delta table: the Delta sink against a hand-written loop.

Both sides get the same `Record` objects in the same batches (1,000 and 10,000 records
of one partition) and end with the same rows in a fresh table on local disk:

* ours: `DeltaSink` (raw value), awaited per batch: it builds the Arrow table from the
  records, checks the recorded offset and commits rows + transaction identifier.
* hand-written: the loop a user writes without it: the same Arrow columns built from
  the records the same way, then `write_deltalake(table, batch, mode="append")` on a
  `DeltaTable` kept open (the faster of the two obvious ways), no idempotency.

Rounds alternate the cases so load from other processes hits both alike; the figure is
the median over rounds of wall-clock rows/s (the work runs in delta-rs's threads, so
CPU time of one thread would miss it). Files per 1M rows are counted from the table's
active files after each case (ROWS rows, scaled to 1M), also with the sink's optional
compaction every 20 commits.

    .venv/bin/python -m scripts.bench.delta_bench [--rows 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from actors.messages import Record
from actors.sinks.delta import DeltaSink, DeltaSinkSettings
from actors.sinks.delta.rows import table_schema

BATCH_SIZES = (1_000, 10_000)
VALUE = (
    b'{"path": "attachments/2026/12/07/0000000000.pdf", "size": 123456, "sha256": "'
    + (b"ab" * 32)
    + b'"}'
)


def make_records(count: int) -> list[Record]:
    """`count` records of one partition, about 200 bytes of value each."""
    return [
        Record(
            "events",
            0,
            offset,
            key=f"key-{offset % 1000}".encode(),
            value=VALUE,
            headers=(("trace_id", f"t-{offset}".encode()),),
            timestamp=1_765_000_000_000 + offset,
        )
        for offset in range(count)
    ]


def hand_built_table(records: Sequence[Record], schema: pa.Schema) -> pa.Table:
    """The Arrow table a user builds from the records: the same columns as the sink's."""
    return pa.table(
        {
            "topic": [r.topic for r in records],
            "partition": [r.partition for r in records],
            "offset": [r.offset for r in records],
            "timestamp": [None if r.timestamp is None else r.timestamp * 1000 for r in records],
            "key": [r.key for r in records],
            "headers": [[{"key": k, "value": v} for k, v in r.headers] for r in records],
            "value": [r.value for r in records],
        },
        schema=schema,
    )


def run_ours(path: Path, batches: list[list[Record]], compact_every: int = 0) -> float:
    """Seconds to write every batch through the sink."""
    settings = DeltaSinkSettings(table=str(path), compact_every_commits=compact_every)

    async def write_all() -> float:
        sink = DeltaSink(settings, group_id="bench")
        await sink.open()
        started = time.perf_counter()
        for batch in batches:
            await sink(batch)
        elapsed = time.perf_counter() - started
        await sink.aclose()
        return elapsed

    return anyio.run(write_all)


def run_hand_written(path: Path, batches: list[list[Record]]) -> float:
    """Seconds to write every batch with a plain write_deltalake loop."""
    schema = table_schema(DeltaSinkSettings(table=str(path)))
    table = DeltaTable.create(str(path), schema)
    started = time.perf_counter()
    for batch in batches:
        write_deltalake(table, hand_built_table(batch, schema), mode="append")
    return time.perf_counter() - started


def files_per_million(path: Path, rows: int) -> float:
    """Active data files of the table, scaled to 1M rows."""
    return len(DeltaTable(str(path)).file_uris()) * 1_000_000 / rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    records = make_records(args.rows)
    cases: dict[str, Callable[[Path, list[list[Record]]], float]] = {
        "ours": run_ours,
        "hand-written": run_hand_written,
    }
    print(f"{args.rows:,} rows per case, {args.rounds} rounds, median rows/s (wall clock)")
    print(f"{'batch':>7} {'case':<24} {'rows/s':>10} {'vs hand':>8} {'files/1M rows':>14}")
    for size in BATCH_SIZES:
        batches = [records[start : start + size] for start in range(0, len(records), size)]
        rates: dict[str, list[float]] = {name: [] for name in cases}
        files: dict[str, float] = {}
        for round_number in range(args.rounds):
            order = list(cases) if round_number % 2 == 0 else list(reversed(cases))
            for name in order:
                with tempfile.TemporaryDirectory() as directory:
                    path = Path(directory) / "t"
                    rates[name].append(args.rows / cases[name](path, batches))
                    files[name] = files_per_million(path, args.rows)
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "t"
            compacted_rate = args.rows / run_ours(path, batches, compact_every=20)
            files["ours + compact every 20"] = files_per_million(path, args.rows)
        baseline = statistics.median(rates["hand-written"])
        for name, values in [*rates.items(), ("ours + compact every 20", [compacted_rate])]:
            rate = statistics.median(values)
            print(
                f"{size:>7,} {name:<24} {rate:>10,.0f} {rate / baseline:>7.2f}x"
                f" {files[name]:>14,.0f}"
            )


if __name__ == "__main__":
    main()
