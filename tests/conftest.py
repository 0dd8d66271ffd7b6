"""Session-wide fixtures: one real Kafka-protocol broker for every test that needs one.

`KAFKA_BOOTSTRAP_SERVERS` points the suite at a user's broker; otherwise an embedded
Tansu broker is started on a free loopback port and stopped at the end. A broker that
cannot be had is a failure of the tests that need it, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from supervisor.testing import EmbeddedBroker, external_bootstrap

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
def broker_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the embedded broker writes its output, for post-mortems of failed tests."""
    return tmp_path_factory.mktemp("broker") / "tansu.log"


@pytest.fixture(scope="session")
def bootstrap_servers(broker_log: Path) -> Iterator[str]:
    """Bootstrap servers of the session's broker (yours, or an embedded Tansu)."""
    external = external_bootstrap()
    if external:
        yield external
        return
    broker = EmbeddedBroker(log_path=broker_log)
    try:
        broker.start()
    except Exception as exc:  # the broker is required: fail loudly, naming the cause
        pytest.fail(f"could not start the embedded Tansu broker: {exc!r}", pytrace=False)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
