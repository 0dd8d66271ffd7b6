"""Scenario 4: poison records. A strict handler rejects five kinds of bad record.

Invalid UTF-8, invalid JSON, a 900 KB value (over the handler's 512 KB limit), a record
without a trace id, and one whose handler raises ValueError: each is PERMANENT, so each
lands in the dead-letter topic with its original bytes and headers plus the dlq.* ones,
and the good records around them are all handled (the consumer never stalls). When most
records are poison, the poison-storm guard stops the process: exit 1, one line; it has
committed only records it finished (handled or dead-lettered). The storm runs one
record at a time and with `ordering = "key"` and 16 in flight on 50 repeating keys,
where each key's records are finished in offset order.

Records that once stopped the consumer before the handler or the dead-letter path ran
are mixed into a stream of good records too: a null trace_id header and a 200 KB trace
id (handled), an error message holding lone surrogates, an exception whose __str__
raises and a value so close to 1 MB that its dead-letter copy with the dlq.* headers is
over the producer's default limit (dead-lettered); and, with `[dedup] json_field`,
distinct JSON ids beyond 2**64 that orjson would round to the same float (all handled).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from reliability_harness import (
    PipelineProcess,
    Sink,
    key_order_violations,
    pipeline_sections,
    until,
    with_keys,
    workload,
    write_config,
)
from reliability_report import ReliabilityReport

from supervisor.testing import committed_offsets, create_topics, produce, read_topic, unique_name

pytestmark = pytest.mark.anyio

STRICT_HANDLER = '''
"""Takes UTF-8 JSON objects up to 512 KB with a trace_id header; `"fail": true` is refused."""
from pathlib import Path

import orjson

from actors.sinks import JsonLinesHandler

MAX_BYTES = 512 * 1024
_sink = JsonLinesHandler(Path("handled.jsonl"))


class UnprintableError(ValueError):
    """A bad-input error whose __str__ fails."""

    def __str__(self):
        raise RuntimeError("no text for this error")


async def handle(record):
    value = record.value or b""
    raising = dict(record.headers).get("raise")
    if raising == b"surrogate":
        raise ValueError("cannot read " + value.decode("utf-8", "surrogateescape"))
    if raising == b"unprintable":
        raise UnprintableError()
    if raising == b"near-limit":
        raise ValueError(f"value of {len(value)} bytes is refused")
    if len(value) > MAX_BYTES:
        raise ValueError(f"value of {len(value)} bytes is over the limit of {MAX_BYTES}")
    if not any(name == "trace_id" for name, _ in record.headers):
        raise ValueError("the record has no trace_id header")
    document = orjson.loads(value.decode("utf-8"))
    if document.get("fail"):
        raise ValueError(f"record {document['id']} is refused by the handler")
    _sink(record)


handle.before_commit = _sink.before_commit  # fsync once per commit
'''

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def _poison(kind: str, n: int) -> Record:
    """One poison record of `kind`; a `kind` header tells which, and survives dead-lettering."""
    record_id = f"{kind}-{n}"
    headers = [("kind", kind.encode()), ("trace_id", record_id.encode())]
    value = orjson.dumps({"id": record_id})
    if kind == "utf8":
        value = b'\xff\xfe{"id": "' + record_id.encode() + b'"}'
    elif kind == "json":
        value = b'{"id": "' + record_id.encode() + b'", '
    elif kind == "huge":
        value = orjson.dumps({"id": record_id, "pad": "x" * 900_000})
    elif kind == "no-trace-id":
        headers = [("kind", kind.encode())]
    elif kind == "refused":
        value = orjson.dumps({"id": record_id, "fail": True})
    return record_id.encode(), value, headers


ERROR_CLASS = {
    "utf8": b"builtins.UnicodeDecodeError",
    "json": b"orjson.JSONDecodeError",
    "huge": b"builtins.ValueError",
    "no-trace-id": b"builtins.ValueError",
    "refused": b"builtins.ValueError",
}


def _process(
    tmp_path: Path, bootstrap: str, topic: str, group: str, extra: dict[str, dict[str, object]]
) -> PipelineProcess:
    (tmp_path / "kp_strict_handler.py").write_text(STRICT_HANDLER)
    overrides: dict[str, dict[str, object]] = {"handler": {"target": "kp_strict_handler:handle"}}
    overrides.update(extra)
    sections = pipeline_sections(bootstrap, topic, group, overrides)
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    }
    return PipelineProcess(tmp_path, write_config(tmp_path / "pipeline.toml", sections), env=env)


async def test_each_kind_of_poison_is_dead_lettered_with_its_headers_and_good_records_flow(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Ten poison records among 150 good ones: all ten in the DLQ as sent, all 150 handled."""
    topic, group = unique_name("poison"), unique_name("poison-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    good = workload("good", 150)
    records: list[Record] = []
    for n, record in enumerate(good):
        records.append(record)
        if n % 15 == 7:
            kinds = list(ERROR_CLASS)
            records.append(_poison(kinds[(n // 15) % len(kinds)], n))
    poison = {offset: record for offset, record in enumerate(records) if record not in good}
    assert len(poison) == 10
    for record in records:  # one by one: a 900 KB record must not share a request
        await produce(bootstrap_servers, topic, [record])
    process = _process(tmp_path, bootstrap_servers, topic, group, {})
    processes.append(process)
    process.start()
    sink = Sink(tmp_path / "handled.jsonl")
    await until(
        lambda: sink.count() >= len(good), 60, "every good record is handled", alive=process
    )
    dead = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=len(poison))
    assert process.running, process.stderr()
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0

    assert sorted(sink.ids()) == sorted(key.decode() for key, _, _ in good)
    assert sorted(int(dict(r.headers)["dlq.source.offset"]) for r in dead) == sorted(poison)
    for letter in dead:
        headers = dict(letter.headers)
        key, value, original_headers = poison[int(headers["dlq.source.offset"])]
        kind = headers["kind"].decode()
        assert (letter.key, letter.value) == (key, value)
        assert list(letter.headers[: len(original_headers)]) == original_headers
        assert headers["dlq.source.topic"] == topic.encode()
        assert headers["dlq.source.partition"] == b"0"
        assert headers["dlq.error.class"] == ERROR_CLASS[kind]
        assert headers["dlq.error.category"] == b"permanent"
        assert headers["dlq.error.message"]
        assert headers["dlq.failed.at"]
    committed = await committed_offsets(bootstrap_servers, group, topic, 1)
    assert committed == {0: len(records)}
    reliability_report.record(
        "4. poison records",
        poison_records=len(poison),
        dead_lettered_with_headers=len(dead),
        good_records_handled=sink.count(),
        records_lost=len(good) - sink.count(),
        committed_offset=committed[0],
    )


STORM_KEYS = 50
GOOD_BEFORE_STORM = 200


@pytest.mark.parametrize(
    ("ordering", "max_in_flight"), [("partition", 1), ("key", 16)], ids=["sequential", "key-16"]
)
async def test_a_poison_storm_stops_the_process_with_exit_1(
    ordering: str,
    max_in_flight: int,
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """After 200 good records, four poison records of every five: the guard escalates once
    its window is judged; below the commit every record was handled or dead-lettered."""
    topic, group = unique_name("poison-storm"), unique_name("poison-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    kinds = ["utf8", "json", "no-trace-id", "refused"]
    records: list[Record] = workload("before", GOOD_BEFORE_STORM)
    for n, record in enumerate(workload("good", 10)):
        records.append(record)
        records.extend(_poison(kind, n) for kind in kinds)
    await produce(bootstrap_servers, topic, with_keys(records, STORM_KEYS))
    handler = {
        "target": "kp_strict_handler:handle",
        "ordering": ordering,
        "max_in_flight": max_in_flight,
    }
    process = _process(
        tmp_path,
        bootstrap_servers,
        topic,
        group,
        {"dead_letter": {"poison_window": 20}, "handler": handler},
    )
    processes.append(process)
    process.start()
    assert await process.exit_code(within=60) == 1
    [line] = process.stderr().splitlines()
    found = re.fullmatch(
        r"kafka-pipeline: actor 'kafka_consumer' escalated \(permanent\): "
        r"poison storm: (\d+) of last (\d+) records dead-lettered",
        line,
    )
    assert found is not None, line
    dead_lettered, window = int(found.group(1)), int(found.group(2))
    assert window == 20
    assert dead_lettered > window / 2

    # Nothing lost: below the committed offset every record was handled or dead-lettered
    # (at or after it, the next life gets them again).
    committed = (await committed_offsets(bootstrap_servers, group, topic, 1))[0] or 0
    assert committed > 0, "the consumer committed nothing before it exited"
    poison_below = sum(1 for _, _, headers in records[:committed] if dict(headers).get("kind"))
    dead = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=poison_below)
    letters: list[dict[str, Any]] = [
        {"partition": 0, "offset": int(dict(r.headers)["dlq.source.offset"]), "key": r.key}
        for r in dead
    ]
    handled = Sink(tmp_path / "handled.jsonl").entries()
    finished = [e["offset"] for e in handled] + [letter["offset"] for letter in letters]
    assert len(finished) == len(set(finished)), "a record was handled or dead-lettered twice"
    missing = set(range(committed)) - set(finished)
    assert not missing, f"committed past records neither handled nor dead-lettered: {missing}"
    out_of_key_order = key_order_violations(handled) + key_order_violations(letters)
    assert out_of_key_order == 0, "a key's records were finished out of offset order"
    reliability_report.record(
        f"4. poison storm (ordering {ordering}, {max_in_flight} in flight)",
        exit_code=1,
        dead_lettered_in_window=f"{dead_lettered} of {window}",
        committed_offset=committed,
        handled_below_the_commit=sum(e["offset"] < committed for e in handled),
        dead_lettered_below_the_commit=sum(letter["offset"] < committed for letter in letters),
        records_lost_below_the_commit=len(missing),
        out_of_key_order_within_a_life=out_of_key_order,
    )


NEAR_LIMIT = 1_048_576
"""aiokafka's default max_request_size: the source record is just under it."""


def _near_limit_record(n: int) -> Record:
    """A record whose estimated size is a few bytes under the default request limit."""
    record_id = f"near-limit-{n}"
    headers = [("kind", b"near-limit"), ("trace_id", record_id.encode()), ("raise", b"near-limit")]
    overhead = DefaultRecordBatchBuilder.estimate_size_in_bytes(record_id.encode(), b"", headers)
    value = b"v" * (NEAR_LIMIT - 64 - overhead - 8)
    return record_id.encode(), value, headers


def _former_crasher(kind: str, n: int) -> Record:
    """One record of `kind` that once stopped the consumer before its handler ran."""
    record_id = f"{kind}-{n}"
    trace = [("trace_id", record_id.encode())]
    value = orjson.dumps({"id": record_id})
    if kind == "null-trace-id":
        return record_id.encode(), value, [("kind", b"null-trace-id"), ("trace_id", None)]  # type: ignore[list-item]
    if kind == "long-trace-id":
        return record_id.encode(), value, [("kind", b"long"), ("trace_id", b"t" * 200_000)]
    if kind == "surrogate":
        bad = b'{"id": "' + record_id.encode() + b'"} \xff\xfe'
        return record_id.encode(), bad, [("kind", b"surrogate"), ("raise", b"surrogate"), *trace]
    if kind == "unprintable":
        return (
            record_id.encode(),
            value,
            [("kind", b"unprintable"), ("raise", b"unprintable"), *trace],
        )
    return _near_limit_record(n)


HANDLED_PILLS = ("null-trace-id", "long-trace-id")
DEAD_LETTERED_PILLS = ("surrogate", "unprintable", "near-limit")


async def test_records_that_once_stopped_the_consumer_are_handled_or_dead_lettered(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Each former crasher between good records: handled or dead-lettered, all good handled."""
    topic, group = unique_name("crashers"), unique_name("crashers-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    good = workload("good", 60)
    records: list[Record] = []
    kinds = [*HANDLED_PILLS, *DEAD_LETTERED_PILLS]
    for n, record in enumerate(good):
        records.append(record)
        if n % 10 == 5 and n // 10 < len(kinds):
            records.append(_former_crasher(kinds[n // 10], n))
    pills = {offset: record for offset, record in enumerate(records) if record not in good}
    assert len(pills) == len(kinds)
    for record in records:  # one by one: a record near 1 MB must not share a request
        await produce(bootstrap_servers, topic, [record])
    process = _process(tmp_path, bootstrap_servers, topic, group, {})
    processes.append(process)
    process.start()
    sink = Sink(tmp_path / "handled.jsonl")
    expected_handled = len(good) + len(HANDLED_PILLS)
    await until(
        lambda: sink.count() >= expected_handled,
        60,
        "good records and handled pills",
        alive=process,
    )
    dead = await read_topic(bootstrap_servers, f"{topic}.dlq", expected=len(DEAD_LETTERED_PILLS))
    assert process.running, process.stderr()
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0
    committed = await committed_offsets(bootstrap_servers, group, topic, 1)

    handled_kinds = [dict(entry["headers"]).get("kind") for entry in sink.entries()]
    assert sorted(k for k in handled_kinds if k is not None) == sorted(["null-trace-id", "long"])
    assert sink.count() == expected_handled
    assert sorted(dict(r.headers)["kind"].decode() for r in dead) == sorted(DEAD_LETTERED_PILLS)
    for letter in dead:
        headers = dict(letter.headers)
        key, value, _ = pills[int(headers["dlq.source.offset"])]
        assert letter.key == key
        if "dlq.value.cut" in headers:  # the broker refused the whole copy: cut to fit
            assert value.startswith(letter.value or b"")
            assert headers["dlq.value.sha256"] == hashlib.sha256(value).hexdigest().encode()
        else:
            assert letter.value == value
        assert headers["dlq.error.message"].decode("utf-8")
    messages = {dict(r.headers)["kind"]: dict(r.headers)["dlq.error.message"] for r in dead}
    assert messages[b"surrogate"].endswith(b"\\udcff\\udcfe")
    assert messages[b"unprintable"] == b"UnprintableError()"
    assert committed == {0: len(records)}
    near = next(r for r in dead if dict(r.headers)["kind"] == b"near-limit")
    reliability_report.record(
        "4. poison records",
        former_crashers_handled=len(HANDLED_PILLS),
        former_crashers_dead_lettered=len(dead),
        near_limit_copy_cut="dlq.value.cut" in dict(near.headers),
    )


async def test_distinct_json_ids_beyond_64_bits_are_all_handled(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Ids 2**64, 2**64 + 1, ... read by [dedup] json_field: none skipped as a duplicate."""
    topic, group = unique_name("bigint"), unique_name("bigint-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq"])
    records: list[Record] = list(workload("before", 5))
    for n in range(10):
        big = 2**64 + n
        records.append(
            (
                str(big).encode(),
                b'{"id": ' + str(big).encode() + b"}",
                [("trace_id", str(big).encode())],
            )
        )
    records.extend(workload("after", 5))
    await produce(bootstrap_servers, topic, records)
    process = _process(tmp_path, bootstrap_servers, topic, group, {"dedup": {"json_field": "id"}})
    processes.append(process)
    process.start()
    sink = Sink(tmp_path / "handled.jsonl")
    await until(lambda: sink.count() >= len(records), 60, "every record handled", alive=process)
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0
    assert sorted(sink.ids()) == sorted(key.decode() for key, _, _ in records)
    committed = await committed_offsets(bootstrap_servers, group, topic, 1)
    assert committed == {0: len(records)}
    reliability_report.record("4. poison records", distinct_ids_beyond_2_64_handled=10)
