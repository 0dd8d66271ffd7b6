"""Scenario 2: the Apache Kafka broker is down for 10 s while the process runs.

The broker keeps its log directory across the outage, whether it was stopped
gracefully or killed with SIGKILL (log recovery at start): records and committed
offsets survive, and every record produced before, during (the producer retries until
acknowledged) and after the outage is handled at least once. A broker that lost its
disk comes back empty (the test creates the topics again, as an operator would): the
process handles everything produced after it came back. In all, the process stays up
by itself (restarts are fine; the restart intensity is set above what a 10 s outage
can spend, so an escalation would be a bug).

"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from functools import partial
from pathlib import Path

import anyio
import pytest
from reliability_harness import (
    PipelineProcess,
    RetryingProducer,
    Sink,
    log_events,
    pipeline_sections,
    produce_until,
    until,
    workload,
    write_config,
)
from reliability_report import ReliabilityReport

from supervisor.testing import create_topics, produce, unique_name
from supervisor.testing.apache_kafka import ApacheKafkaBroker

pytestmark = pytest.mark.anyio

OUTAGE_S = 10.0
PARTITIONS = 4
PATIENT_SUPERVISOR = {"max_restarts": 30, "period_s": 30, "backoff_base_s": 0.1, "backoff_max_s": 1}


def _start(
    tmp_path: Path,
    broker: ApacheKafkaBroker,
    topic: str,
    overrides: dict[str, dict[str, object]] | None = None,
) -> PipelineProcess:
    sections = pipeline_sections(
        broker.bootstrap_servers,
        topic,
        unique_name("outage-g"),
        {"supervisor": PATIENT_SUPERVISOR, **(overrides or {})},
    )
    return PipelineProcess(tmp_path, write_config(tmp_path / "pipeline.toml", sections))


def _restarts(process: PipelineProcess) -> int:
    events = log_events(process.stdout())
    return sum(1 for event in events if event.get("event") == "child_restarting")


def _assignments(process: PipelineProcess) -> int:
    """How often the consumer has been assigned partitions so far (its own log line)."""
    events = log_events(process.stdout())
    return sum(1 for event in events if str(event["message"]).startswith("assigned "))


@pytest.mark.parametrize("how", ["stopped", "killed"])
async def test_a_broker_outage_loses_nothing_and_needs_no_help(
    how: str,
    own_broker: ApacheKafkaBroker,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Records produced before, during and after a 10 s outage (a graceful stop, or a
    SIGKILL) of a broker that keeps its log directory are all handled; no exit."""
    broker = own_broker
    bootstrap = broker.bootstrap_servers
    topic = unique_name("outage")
    await create_topics(bootstrap, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    await produce(bootstrap, topic, workload("before", 300))
    process = _start(tmp_path, broker, topic)
    processes.append(process)
    process.start()
    sink = Sink(tmp_path / "handled.jsonl")
    await until(
        lambda: sink.count() >= 300, 30, "the records from before are handled", alive=process
    )

    produced: list[str] = []
    stop_producing = anyio.Event()
    producer = RetryingProducer(bootstrap)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            partial(produce_until, prefix="during", pause_s=0.05),
            stop_producing,
            producer,
            topic,
            produced,
        )
        await anyio.sleep(1)
        await anyio.to_thread.run_sync(broker.stop if how == "stopped" else broker.kill)
        down_at = time.monotonic()
        await anyio.sleep(OUTAGE_S)
        await anyio.to_thread.run_sync(broker.start)
        back_at, handled_at_return = time.monotonic(), sink.count()
        recovery = await until(
            lambda: sink.count() > handled_at_return,
            60,
            "records are handled after the outage",
            alive=process,
        )
        await anyio.sleep(1)
        stop_producing.set()
    await producer.aclose()
    await produce(bootstrap, topic, workload("after", 300))

    expected = {f"before-{n}" for n in range(300)} | set(produced)
    expected |= {f"after-{n}" for n in range(300)}
    await until(lambda: expected <= set(sink.ids()), 60, "every record is handled", alive=process)
    assert process.running, f"the process exited: {process.stderr()}"
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0
    assert "escalated" not in process.stderr()
    reliability_report.record(
        f"2a. broker down 10 s ({how}, log dir kept)",
        records_produced=len(expected),
        records_lost=len(expected - set(sink.ids())),
        produced_around_the_outage=len(produced),
        broker_down_s=back_at - down_at,
        producer_retries=producer.retries,
        process_restarts_of_actors=_restarts(process),
        recovery_s_after_broker_back=recovery,
        total_s_from_broker_back_to_all_handled=time.monotonic() - back_at,
    )


async def test_a_broker_that_comes_back_empty_is_consumed_again(
    own_broker: ApacheKafkaBroker,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """After a 10 s outage of a broker that lost its disk, what is produced afterwards is
    all handled.

    The broker is killed and its log directory wiped while the commit of the last
    records handled is still due (the commit interval is 5 s here, so this is certain).
    The records from before the outage are gone with the disk, but nothing produced after
    the broker came back may be skipped: the consumer, which the restarted broker no
    longer knows, must not commit its old offsets there when it rejoins (they would lie
    within the new log and skip its first records).
    """
    broker = own_broker
    bootstrap = broker.bootstrap_servers
    topic = unique_name("outage-mem")
    await create_topics(bootstrap, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    await produce(bootstrap, topic, workload("before", 200))
    process = _start(tmp_path, broker, topic, {"kafka": {"commit_interval_s": 5}})
    processes.append(process)
    process.start()
    sink = Sink(tmp_path / "handled.jsonl")
    await until(
        lambda: sink.count() >= 200, 30, "the records from before are handled", alive=process
    )

    assignments = _assignments(process)
    broker.kill()
    shutil.rmtree(broker.data_dir)
    await anyio.sleep(OUTAGE_S)
    await anyio.to_thread.run_sync(broker.start)
    back_at = time.monotonic()
    await create_topics(bootstrap, [topic, f"{topic}.dlq"], partitions=PARTITIONS)
    await until(
        lambda: _assignments(process) > assignments, 30, "the consumer joins again", alive=process
    )
    await produce(bootstrap, topic, workload("after", 300))

    expected = {f"after-{n}" for n in range(300)}
    with contextlib.suppress(AssertionError):
        await until(
            lambda: expected <= set(sink.ids()), 30, "the records produced after", alive=process
        )
    lost = expected - set(sink.ids())
    reliability_report.record(
        "2b. broker down 10 s, came back empty (disk lost)",
        records_produced_after=len(expected),
        records_lost=len(lost),
        process_restarts_of_actors=_restarts(process),
        seconds_from_broker_back=time.monotonic() - back_at,
    )
    assert not lost, (
        f"{len(lost)} of {len(expected)} records produced after the broker came back were "
        f"never handled, e.g. {sorted(lost)[:3]}"
    )
    assert process.running, f"the process exited: {process.stderr()}"
    process.signal(signal.SIGTERM)
    assert await process.exit_code(within=15) == 0
