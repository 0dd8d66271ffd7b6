"""StdoutSink and FileSink: JSON lines out, flushed per batch, reopened after close."""

from __future__ import annotations

import io
import json
import logging
import stat
from pathlib import Path

import pytest

from actors.log_shipper import (
    ChannelHandler,
    FileSink,
    FormattedRecord,
    LogBuffer,
    LogShipperActor,
    LogSink,
    StdoutSink,
)

pytestmark = pytest.mark.anyio


def json_records(count: int) -> list[FormattedRecord]:
    """`count` records formatted by the default ChannelHandler formatter (core's JSONFormatter)."""
    buffer = LogBuffer(count)
    handler = ChannelHandler(buffer)
    for number in range(count):
        record = logging.LogRecord(
            "tests.sinks", logging.INFO, __file__, 1, "n=%d", (number,), None
        )
        record.password = "hunter2"
        handler.handle(record)
    batch = buffer.next_batch(count)
    assert batch is not None
    return batch.records


async def test_file_sink_appends_valid_json_lines_across_batches_and_reopens(
    tmp_path: Path,
) -> None:
    """Two batches, a close and a third batch all land in the file, one JSON object per line."""
    path = tmp_path / "logs" / "app.log"
    path.parent.mkdir()
    path.write_text('{"earlier": true}\n')
    sink = FileSink(path, fsync=True)
    records = json_records(7)
    await sink.write(records[:3])
    await sink.write(records[3:5])
    await sink.aclose()
    await sink.write(records[5:])
    await sink.aclose()
    payloads = [json.loads(line) for line in path.read_text().splitlines()]
    assert payloads[0] == {"earlier": True}
    assert [payload["message"] for payload in payloads[1:]] == [f"n={n}" for n in range(7)]
    assert "hunter2" not in path.read_text(), "the formatter masked the secret-looking field"


async def test_file_sink_failure_leaves_it_ready_to_retry(tmp_path: Path) -> None:
    """A write into a missing directory raises; once the directory exists the same sink writes."""
    path = tmp_path / "later" / "app.log"
    sink = FileSink(path)
    records = json_records(2)
    with pytest.raises(FileNotFoundError):
        await sink.write(records)
    path.parent.mkdir()
    await sink.write(records)
    await sink.aclose()
    assert path.read_text().splitlines() == [record.line for record in records]


async def test_stdout_sink_writes_lines_to_its_stream_and_leaves_it_open() -> None:
    """StdoutSink writes each line plus a newline to the given stream and never closes it."""
    stream = io.StringIO()
    sink = StdoutSink(stream)
    records = json_records(3)
    await sink.write(records)
    await sink.aclose()
    assert not stream.closed
    assert stream.getvalue() == "".join(f"{record.line}\n" for record in records)


async def test_stdout_sink_defaults_to_sys_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a stream, the shipper's lines go to the process's standard output."""
    buffer = LogBuffer(10)
    logger = logging.getLogger("tests.sinks.stdout")
    logger.propagate = False
    handler = ChannelHandler(buffer)
    logger.addHandler(handler)
    try:
        logger.warning("to stdout")
    finally:
        logger.removeHandler(handler)
    await LogShipperActor(buffer, [StdoutSink()]).flush()
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["message"] == "to stdout"


def test_sinks_satisfy_the_log_sink_protocol(tmp_path: Path) -> None:
    """Both built-in sinks are LogSinks (checked at runtime against the Protocol)."""
    assert isinstance(StdoutSink(io.StringIO()), LogSink)
    assert isinstance(FileSink(tmp_path / "x.log"), LogSink)


@pytest.mark.anyio
@pytest.mark.parametrize(("given", "expected"), [(None, 0o600), (0o640, 0o640)])
async def test_a_new_log_file_is_private_unless_configured_otherwise(
    tmp_path: Path, given: int | None, expected: int
) -> None:
    """The log file is created 0600 by default (logs may quote record data), or as configured."""
    path = tmp_path / "pipeline.log"
    sink = FileSink(path) if given is None else FileSink(path, file_mode=given)
    await sink.write([FormattedRecord("l", "line")])
    await sink.aclose()
    assert stat.S_IMODE(path.stat().st_mode) == expected


@pytest.mark.anyio
async def test_an_existing_log_file_keeps_its_permissions(tmp_path: Path) -> None:
    """A file someone else created keeps the mode they chose; lines are appended to it."""
    path = tmp_path / "pipeline.log"
    path.write_text("old\n")
    path.chmod(0o644)
    sink = FileSink(path)
    await sink.write([FormattedRecord("l", "new")])
    await sink.aclose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "old\nnew\n"
