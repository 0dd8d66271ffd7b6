"""Session-wide fixtures: one real Apache Kafka broker for every test that needs one.

`KAFKA_BOOTSTRAP_SERVERS` points the suite at a user's broker; otherwise an Apache Kafka
broker (KRaft, one node; supervisor.apache_kafka) is started on free loopback ports in
a temporary directory and stopped by its PID at the end. Its jars come from
`scripts/_kafka.sh` (run by scripts/test). Tansu stays the demo's broker; the tests of
the demo and of the Tansu launcher start it themselves. A broker that cannot be had is a
failure of the tests that need it, never a skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from supervisor.testing import external_bootstrap
from supervisor.testing.apache_kafka import ApacheKafkaBroker

# Speed is measured by benchmarks, never by timed assertions: Hypothesis' per-example
# deadline only turned a loaded machine into failures.
settings.register_profile("kafka-pipeline", deadline=None)
settings.load_profile("kafka-pipeline")

# Fixtures shared by tests in several folders, defined once in tests/support/.
pytest_plugins = ["fake_az", "ports"]


@pytest.fixture
def anyio_backend() -> str:
    """Run anyio tests on asyncio, the backend aiokafka needs."""
    return "asyncio"


@pytest.fixture(scope="session")
def broker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session broker's directory: storage, server.log (for post-mortems), its config."""
    return tmp_path_factory.mktemp("apache-kafka")


@pytest.fixture(scope="session")
def bootstrap_servers(broker_dir: Path) -> Iterator[str]:
    """Bootstrap servers of the session's broker (yours, or an Apache Kafka of its own)."""
    external = external_bootstrap()
    if external:
        yield external
        return
    broker = ApacheKafkaBroker(directory=broker_dir)
    try:
        broker.start()
    except Exception as exc:  # the broker is required: fail loudly, naming the cause
        pytest.fail(f"could not start the Apache Kafka test broker: {exc}", pytrace=False)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
        shutil.rmtree(broker.data_dir, ignore_errors=True)


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[ApacheKafkaBroker]:
    """An Apache Kafka broker of this test alone, which it may stop, kill and restart."""
    broker = ApacheKafkaBroker(directory=tmp_path / "apache-kafka")
    try:
        broker.start()
    except Exception as exc:  # a broker is required: fail, never skip
        pytest.fail(f"could not start an Apache Kafka broker: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.data_dir, ignore_errors=True)
