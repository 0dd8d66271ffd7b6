"""Fixtures of the SASL tests: one fake Entra endpoint and one SASL-enabled broker per session.

The broker (sasl_kafka.py) is an Apache Kafka of these tests alone: its OAUTHBEARER
listeners validate the fake Entra endpoint's tokens, so it starts after that endpoint
and trusts its key. The session's plain broker (tests/conftest.py) is not involved.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from auth_fake_entra import FakeEntra, running_fake_entra
from sasl_kafka import SaslKafka, start_sasl_kafka


@pytest.fixture(scope="session")
def fake_entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeEntra]:
    """The Entra-style HTTPS token endpoint whose RS256 tokens the broker validates."""
    with running_fake_entra(tmp_path_factory.mktemp("entra")) as entra:
        yield entra


@pytest.fixture(autouse=True)
def fresh_entra(fake_entra: FakeEntra) -> None:
    """Each test starts with an endpoint that issues hour-long tokens and has seen nothing."""
    fake_entra.reset()


@pytest.fixture(scope="session")
def sasl_kafka(
    fake_entra: FakeEntra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SaslKafka]:
    """An Apache Kafka with SASL_PLAINTEXT and SASL_SSL listeners (PLAIN, SCRAM-SHA-512,
    OAUTHBEARER against the fake endpoint's JWKS), for the whole session."""
    directory = tmp_path_factory.mktemp("sasl-kafka")
    try:
        kafka = start_sasl_kafka(directory, fake_entra.jwks(), fake_entra.issuer)
    except Exception as exc:  # a broker is required: fail, never skip
        pytest.fail(f"could not start the SASL Apache Kafka broker: {exc}", pytrace=False)
    try:
        yield kafka
    finally:
        kafka.broker.stop()
        shutil.rmtree(kafka.broker.data_dir, ignore_errors=True)
