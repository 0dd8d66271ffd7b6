"""Fixtures of the reliability suite: the figures report and the processes a test starts.

Every process a test starts goes through `processes`, which kills what still runs at the
end of the test (by the process group it started, never by name). Scenarios that stop or
kill the broker start their own (`own_broker`, `s3_broker`); the others share the
session's broker (`bootstrap_servers`, tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_harness import PipelineProcess
from reliability_report import ReliabilityReport

from supervisor.testing.embedded_broker import EmbeddedBroker, LocalS3

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
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A memory-storage broker of this test alone, which it may stop and restart."""
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    try:
        broker.start()
    except Exception as exc:  # a broker is required: fail, never skip
        pytest.fail(f"could not start an embedded Tansu broker: {exc!r}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def s3_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test alone storing to a local S3 server, so a restart loses nothing."""
    s3 = LocalS3(log_path=tmp_path / "moto.log")
    try:
        s3.start()
    except Exception as exc:
        pytest.fail(f"could not start the local S3 server: {exc!r}", pytrace=False)
    broker = EmbeddedBroker.on_s3(s3, log_path=tmp_path / "tansu.log")
    try:
        try:
            broker.start()
        except Exception as exc:
            pytest.fail(f"could not start Tansu on S3 storage: {exc!r}", pytrace=False)
        yield broker
    finally:
        broker.stop()
        s3.stop()
