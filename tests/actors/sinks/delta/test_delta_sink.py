"""The Delta sink on a local table: rows and columns, redeliveries, conflicts, schema
mismatch, per-record failures and compaction (real deltalake on a temporary directory)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson
import pytest
from delta_testing import TOPIC, make_record, rows_per_coordinate
from deltalake import DeltaTable, write_deltalake

from actors.consumer import BatchResult
from actors.messages import Record
from actors.sinks.delta import DeltaBatchHandler, DeltaSink, DeltaSinkSettings
from core.errors import (
    CircuitOpenError,
    ConfigurationError,
    DeltaTableError,
    classify_exception,
)
from core.resilience import CircuitState
from core.types import ErrorCategory

pytestmark = pytest.mark.anyio

ATTACHMENT_COLUMNS = {
    "path": "string",
    "size": "long",
    "sha256": "string",
    "source_topic": "string",
    "source_partition": "integer",
    "source_offset": "long",
    "stored_at": "timestamp",
}


def attachment_event(offset: int) -> bytes:
    """The small JSON result event the download stage emits per stored attachment."""
    return orjson.dumps(
        {
            "path": f"attachments/{offset:08d}.pdf",
            "size": 1000 + offset,
            "sha256": f"{offset:064x}",
            "source_topic": "mail",
            "source_partition": 3,
            "source_offset": 500 + offset,
            "stored_at": "2026-12-07T21:00:00+00:00",
            "content_type": "application/pdf",  # not in the schema: ignored
        }
    )


def sink_for(table: Path, **options: object) -> DeltaSink:
    return DeltaSink(DeltaSinkSettings(table=str(table), **options), group_id="g1")  # type: ignore[arg-type]


async def test_a_batch_is_one_commit_with_the_record_columns_and_the_offset(tmp_path: Path) -> None:
    """One batch adds one table version with every record field, and records its last offset."""
    table = tmp_path / "t"
    sink = sink_for(table)
    records = [make_record(2, offset) for offset in range(10, 14)]
    outcome = await sink(records)
    loaded = DeltaTable(str(table))
    assert (outcome.written, outcome.already_written, outcome.failed) == (4, 0, ())
    assert loaded.version() == 1  # version 0 created the table
    assert loaded.transaction_version(f"g1/{TOPIC}/2") == 13
    rows = loaded.to_pyarrow_table().sort_by("offset").to_pylist()
    first = records[0]
    assert rows[0]["topic"] == first.topic
    assert rows[0]["partition"] == 2
    assert rows[0]["key"] == first.key
    assert rows[0]["value"] == first.value
    assert rows[0]["headers"] == [{"key": name, "value": value} for name, value in first.headers]
    assert rows[0]["timestamp"].timestamp() * 1000 == first.timestamp
    await sink.aclose()


async def test_a_redelivered_batch_adds_nothing(tmp_path: Path) -> None:
    """A batch delivered again, to a fresh process, is dropped: records already in are not added."""
    table = tmp_path / "t"
    await sink_for(table)([make_record(0, offset) for offset in range(5)])
    outcome = await sink_for(table)([make_record(0, offset) for offset in range(3, 8)])
    assert (outcome.written, outcome.already_written) == (3, 2)
    assert sorted(rows_per_coordinate(table).values()) == [1] * 8
    assert DeltaTable(str(table)).version() == 2
    again = await sink_for(table)([make_record(0, offset) for offset in range(8)])
    assert (again.written, again.already_written) == (0, 8)
    assert DeltaTable(str(table)).version() == 2  # a pure redelivery commits nothing


async def test_a_commit_lost_to_another_writer_is_retried_after_rereading_the_offset(
    tmp_path: Path,
) -> None:
    """When another process wrote the partition after our snapshot, our commit conflicts,
    the offset is read again and only the records it did not write are committed."""
    table = tmp_path / "t"
    ours, theirs = sink_for(table), sink_for(table)
    await ours([make_record(0, 0)])  # our snapshot now records offset 0
    await theirs([make_record(0, offset) for offset in range(1, 6)])
    outcome = await ours([make_record(0, offset) for offset in range(1, 9)])
    assert ours.conflicts_retried == 1
    assert (outcome.written, outcome.already_written) == (3, 5)
    assert sorted(rows_per_coordinate(table)) == [(0, offset) for offset in range(9)]


async def test_batches_of_different_partitions_commit_concurrently_without_conflict(
    tmp_path: Path,
) -> None:
    """Two partitions written at the same time both commit; their app ids do not conflict."""
    import anyio

    table = tmp_path / "t"
    sink = sink_for(table)
    await sink.open()
    async with anyio.create_task_group() as group:
        for partition in range(4):
            group.start_soon(sink, [make_record(partition, o) for o in range(50)])
    assert sink.conflicts_retried == 0
    assert len(rows_per_coordinate(table)) == 200


async def test_a_table_with_another_schema_is_a_permanent_error(tmp_path: Path) -> None:
    """A JSON-configured sink refuses an existing raw table, PERMANENT, naming the difference."""
    table = tmp_path / "t"
    await sink_for(table)([make_record(0, 0)])
    json_sink = sink_for(table, value="json", columns={"path": "string"})
    with pytest.raises(DeltaTableError, match="missing path") as caught:
        await json_sink([make_record(0, 1, b'{"path": "a"}')])
    assert classify_exception(caught.value) is ErrorCategory.PERMANENT


async def test_a_write_that_does_not_fit_the_table_is_a_permanent_error(tmp_path: Path) -> None:
    """Rows that no longer fit a table someone else altered fail PERMANENT."""
    table = tmp_path / "t"
    sink = sink_for(table)
    await sink([make_record(0, 0)])
    import pyarrow as pa

    write_deltalake(  # someone else replaces the table with another schema
        str(table), pa.table({"other": [1]}), mode="overwrite", schema_mode="overwrite"
    )
    with pytest.raises(DeltaTableError) as caught:
        await sink([make_record(0, 1)])
    assert classify_exception(caught.value) is ErrorCategory.PERMANENT


async def test_json_values_become_columns_one_row_per_stored_attachment(tmp_path: Path) -> None:
    """A download result event becomes one typed row: path, size, SHA-256, source coordinates."""
    table = tmp_path / "attachments"
    sink = sink_for(
        table,
        value="json",
        columns=ATTACHMENT_COLUMNS,
        required=("path", "sha256"),
        partition_by=("source_topic",),
    )
    await sink([make_record(0, offset, attachment_event(offset)) for offset in range(3)])
    loaded = DeltaTable(str(table))
    assert loaded.metadata().partition_columns == ["source_topic"]
    rows = loaded.to_pyarrow_table().sort_by("offset").to_pylist()
    assert [row["path"] for row in rows] == [f"attachments/{o:08d}.pdf" for o in range(3)]
    assert [row["size"] for row in rows] == [1000, 1001, 1002]
    assert rows[2]["sha256"] == f"{2:064x}"
    assert (rows[1]["source_topic"], rows[1]["source_partition"], rows[1]["source_offset"]) == (
        "mail",
        3,
        501,
    )
    assert rows[0]["stored_at"].isoformat() == "2026-12-07T21:00:00+00:00"
    assert "value" not in rows[0]
    assert "content_type" not in rows[0]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"sha256": "ab"}', "required field 'path'"),
        (b'{"path": "a", "sha256": "ab", "size": "big"}', "needs an integer"),
        (b'{"path": "a", "sha256": "ab", "size": 1.5}', "needs an integer"),
        (b'{"path": "a", "sha256": "ab", "source_partition": 4294967296}', "outside"),
        (b'{"path": "a", "sha256": "ab", "stored_at": "2026-12-07T21:00:00"}', "no UTC offset"),
    ],
)
async def test_a_bad_json_value_fails_only_its_record(
    tmp_path: Path, value: bytes, problem: str
) -> None:
    """A value that is not the configured JSON fails alone (PERMANENT); the others are written."""
    table = tmp_path / "t"
    sink = sink_for(table, value="json", columns=ATTACHMENT_COLUMNS, required=("path", "sha256"))
    records = [make_record(0, 0, attachment_event(0)), make_record(0, 1, value)]
    records.append(make_record(0, 2, attachment_event(2)))
    outcome = await sink(records)
    assert outcome.written == 2
    assert [failure.record.offset for failure in outcome.failed] == [1]
    error = outcome.failed[0].error
    assert problem in str(error)
    assert f"{TOPIC}[0]@1" in str(error)
    assert classify_exception(error) is ErrorCategory.PERMANENT
    assert sorted(rows_per_coordinate(table)) == [(0, 0), (0, 2)]
    again = await sink_for(
        table, value="json", columns=ATTACHMENT_COLUMNS, required=("path", "sha256")
    )(records)
    assert (again.written, again.already_written) == (0, 2)
    assert [failure.record.offset for failure in again.failed] == [1]  # reported on every delivery


async def test_extra_columns_come_from_the_users_function(tmp_path: Path) -> None:
    """The user's function adds typed columns; a PERMANENT failure in it fails that record only."""

    def extra(record: Record) -> dict[str, object]:
        offset = record.offset
        if offset == 1:
            raise ValueError("no day for this one")
        return {"day": "2026-12-07", "weight": offset / 2}

    table = tmp_path / "t"
    sink = sink_for(
        table, extra_columns=extra, extra_column_types={"day": "string", "weight": "double"}
    )
    outcome = await sink([make_record(0, offset) for offset in range(3)])
    rows = DeltaTable(str(table)).to_pyarrow_table().sort_by("offset").to_pylist()
    assert [(row["offset"], row["day"], row["weight"]) for row in rows] == [
        (0, "2026-12-07", 0.0),
        (2, "2026-12-07", 1.0),
    ]
    assert [failure.record.offset for failure in outcome.failed] == [1]


async def test_compaction_runs_off_the_write_path_every_n_commits(tmp_path: Path) -> None:
    """With compact_every_commits=5, small files are compacted in a thread; rows stay the same."""
    table = tmp_path / "t"
    sink = sink_for(table, compact_every_commits=5)
    for start in range(0, 50, 5):
        await sink([make_record(0, offset) for offset in range(start, start + 5)])
    await sink.aclose()  # waits for a running compaction
    assert sink._compactor.completed >= 1
    loaded = DeltaTable(str(table))
    assert len(loaded.file_uris()) < 10
    assert sorted(rows_per_coordinate(table)) == [(0, offset) for offset in range(50)]


async def test_batches_that_are_not_one_partition_in_offset_order_are_refused(
    tmp_path: Path,
) -> None:
    """A batch mixing partitions or out of offset order is a caller bug, refused before writing."""
    sink = sink_for(tmp_path / "t")
    with pytest.raises(RuntimeError, match="one partition's records"):
        await sink([make_record(0, 1), make_record(1, 2)])
    with pytest.raises(RuntimeError, match="increasing offset order"):
        await sink([make_record(0, 2), make_record(0, 1)])
    assert not (tmp_path / "t").exists()


async def test_a_closed_sink_takes_no_batch(tmp_path: Path) -> None:
    """After aclose(), a batch raises instead of writing."""
    sink = sink_for(tmp_path / "t")
    await sink.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await sink([make_record(0, 0)])
    assert threading.active_count() >= 1


async def test_the_breaker_opens_when_the_table_keeps_failing(tmp_path: Path) -> None:
    """Failures a retry could fix count against the breaker; once open, it refuses batches."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the table's directory should be")
    sink = sink_for(blocker / "t")
    threshold = sink.breaker.config.failure_threshold
    for _ in range(threshold):
        with pytest.raises(DeltaTableError) as caught:
            await sink([make_record(0, 0)])
        assert classify_exception(caught.value) in (ErrorCategory.TRANSIENT, ErrorCategory.UNKNOWN)
    assert sink.breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await sink([make_record(0, 0)])


async def test_the_batch_handler_names_the_records_that_cannot_become_rows(
    tmp_path: Path,
) -> None:
    """One call is one commit of the good rows; the result names each bad record's offset
    with its PERMANENT error."""
    table = tmp_path / "j"
    sink = sink_for(table, value="json", columns={"a": "long"})
    await sink.open()
    created = DeltaTable(str(table)).version()
    values = [b'{"a": 1}', b"{", b'{"a": 2}', b'{"a": "x"}']
    result = await DeltaBatchHandler(sink)([make_record(0, o, v) for o, v in enumerate(values)])
    assert sorted(rows_per_coordinate(table)) == [(0, 0), (0, 2)]
    assert DeltaTable(str(table)).version() == created + 1
    assert isinstance(result, BatchResult)
    assert sorted(result.failed) == [1, 3]
    for error in result.failed.values():
        assert classify_exception(error) is ErrorCategory.PERMANENT


async def test_the_batch_handler_turns_a_table_refusal_into_a_configuration_error(
    tmp_path: Path,
) -> None:
    """A table of another schema refuses every record: a ConfigurationError naming it,
    with the table's error as its cause; a failure a retry may fix passes unchanged."""
    table = tmp_path / "t"
    await sink_for(table)([make_record(0, 0)])
    json_sink = sink_for(table, value="json", columns={"path": "string"})
    with pytest.raises(ConfigurationError, match="missing path") as refused:
        await DeltaBatchHandler(json_sink)([make_record(0, 1, b'{"path": "a"}')])
    assert isinstance(refused.value.__cause__, DeltaTableError)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the table's directory should be")
    with pytest.raises(DeltaTableError) as failed:
        await DeltaBatchHandler(sink_for(blocker / "t"))([make_record(0, 0)])
    assert classify_exception(failed.value) is not ErrorCategory.PERMANENT


async def test_the_recorded_offset_is_read_back_from_a_checkpoint(tmp_path: Path) -> None:
    """After more commits than the checkpoint interval, a new process still finds the offset."""
    table = tmp_path / "t"
    sink = sink_for(table)
    for offset in range(110):  # delta-rs writes a checkpoint every 100 commits
        await sink([make_record(0, offset)])
    assert any(name.endswith(".checkpoint.parquet") for name in os.listdir(table / "_delta_log"))
    outcome = await sink_for(table)([make_record(0, offset) for offset in range(105, 112)])
    assert (outcome.written, outcome.already_written) == (2, 5)
