"""Fixtures of the reliability suite: the figures report and the processes a test starts.

Every process a test starts goes through `processes`, which kills what still runs at the
end of the test (by the process group it started, never by name). Scenarios that stop or
kill the broker start their own (`own_broker`); the others share the
session's broker (`bootstrap_servers`, tests/conftest.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_harness import PipelineProcess
from reliability_report import ReliabilityReport

from supervisor.testing.apache_kafka import ApacheKafkaBroker

DOCS_REPORT = Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md"


@pytest.fixture(scope="session")
def reliability_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReliabilityReport]:
    """The session's figures; written at the end (see reliability_report's docstring)."""
    report = ReliabilityReport()
    yield report
    scratch = tmp_path_factory.getbasetemp() / "RELIABILITY.md"
    written = report.write(scratch, DOCS_REPORT)
    print(f"\nreliability figures written to {written}")


@pytest.fixture
def processes() -> Iterator[list[PipelineProcess]]:
    """Processes a test started; each is killed (its own process group) and closed after."""
    started: list[PipelineProcess] = []
    yield started
    for process in started:
        process.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[ApacheKafkaBroker]:
    """An Apache Kafka of this test alone, which it may stop, kill, wipe and restart. It
    creates no topics on demand (as in production): after a restart the consumer waits
    for the topics the test creates instead of racing it to an auto-created one."""
    broker = ApacheKafkaBroker(
        directory=tmp_path / "apache-kafka", properties={"auto.create.topics.enable": "false"}
    )
    try:
        broker.start()
    except Exception as exc:  # a broker is required: fail, never skip
        pytest.fail(f"could not start an Apache Kafka broker: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.data_dir, ignore_errors=True)
