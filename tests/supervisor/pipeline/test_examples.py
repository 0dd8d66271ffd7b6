"""The example configurations shipped in examples/ stay valid as the schema evolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.pipeline.config import load_config
from supervisor.pipeline.settings import build_auth, consumer_settings

EXAMPLES_DIR = Path(__file__).parents[3] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.toml"))


def test_there_are_examples() -> None:
    """The local, service-principal and Azure CLI examples exist."""
    assert {path.stem for path in EXAMPLES} >= {
        "local",
        "eventhubs-service-principal",
        "eventhubs-azure-cli",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_loads(path: Path) -> None:
    """Each example parses into a Config when its documented secret is in the environment,
    and its Kafka settings pass the consumer's rules (topic names, servers, SASL)."""
    config = load_config(path, environ={"AZURE_CLIENT_SECRET": "from-the-environment"})
    settings = consumer_settings(config, build_auth(config))
    assert settings.topics == config.kafka.topics


def test_graceful_stop_fits_the_deployment_grace_periods() -> None:
    """systemd's TimeoutStopSec and Kubernetes' grace period exceed the graceful-stop deadline."""
    deploy = Path(__file__).parents[3] / "examples" / "deploy"
    deadline = load_config(EXAMPLES_DIR / "local.toml", environ={}).supervisor.graceful_stop_s
    unit = (deploy / "kafka-pipeline.service").read_text()
    manifest = (deploy / "kubernetes.yaml").read_text()
    stop_sec = int(unit.split("TimeoutStopSec=")[1].split()[0])
    grace = int(manifest.split("terminationGracePeriodSeconds:")[1].split()[0])
    assert stop_sec > deadline
    assert grace > deadline
