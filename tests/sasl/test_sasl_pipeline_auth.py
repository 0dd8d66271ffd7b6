"""The process's AUTH path against a broker that checks tokens: refresh, then restart.

The whole pipeline runs in process from a configuration, as `kafka-pipeline run` wires
it: token file credential (a sidecar's file; the service-principal method cannot be
pointed at a local authority from a configuration) -> token cache and token refresher
-> OAUTHBEARER -> the broker's JWT validator. The tokens in the file are real ones from
the Entra-style endpoint.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio
import pytest
from auth_fake_entra import FakeEntra
from consumer_testing import wait_until
from sasl_kafka import SCOPE, SaslKafka, entra_credentials

from actors.log_shipper import FileSink
from supervisor.pipeline.config import parse_config
from supervisor.pipeline.wiring import Pipeline
from supervisor.testing import committed_offsets, create_topics, produce, unique_name
from supervisor.testing.embedded_broker import free_port

pytestmark = pytest.mark.anyio

RECORDS = 20
REFUSAL = "refused the OAUTHBEARER token"


def write_token_file(path: Path, entra: FakeEntra, *, jwt_lifetime_s: int | None) -> None:
    """What a sidecar writes: a token from the endpoint, said to expire in an hour."""
    entra.behaviour.token_lifetime_s = jwt_lifetime_s
    token = entra_credentials(entra).get_token(SCOPE)
    document = {"access_token": token, "expires_on": int(time.time()) + 3600}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document))
    os.replace(partial, path)


async def test_a_refused_token_is_refreshed_and_the_consumer_restarted(
    sasl_kafka: SaslKafka, fake_entra: FakeEntra, tmp_path: Path
) -> None:
    """The file's token expired by its own `exp` (its `expires_on` claims an hour): the
    broker refuses it, the consumer exits AUTH, and the supervisor has the token refresher
    read the file again before each restart; once the sidecar wrote a good token, the
    restarted consumer handles and commits every record. No token reaches the log."""
    topic, group = unique_name("pipeline-auth"), unique_name("group")
    await create_topics(sasl_kafka.plaintext, [topic, f"{topic}.dlq"])
    await produce(sasl_kafka.plaintext, topic, [(None, b"v%d" % n) for n in range(RECORDS)])
    token_file = tmp_path / "token.json"
    write_token_file(token_file, fake_entra, jwt_lifetime_s=-600)
    config = parse_config(
        f"""
        [kafka]
        bootstrap_servers = "{sasl_kafka.sasl_plaintext}"
        topics = ["{topic}"]
        group_id = "{group}"
        security_protocol = "SASL_PLAINTEXT"
        sasl_mechanism = "OAUTHBEARER"
        session_timeout_ms = 2000
        heartbeat_interval_ms = 200
        [auth]
        method = "token_file"
        token_file = "{token_file}"
        scope = "{SCOPE}"
        [handler]
        target = "jsonl:handled.jsonl"
        [supervisor]
        max_restarts = 50
        backoff_base_s = 0.2
        backoff_max_s = 1.0
        [health]
        port = {free_port()}
        """,
        environ={},
    )
    log = tmp_path / "pipeline.log"
    pipeline = Pipeline(config, log_sinks=[FileSink(log)], base_dir=tmp_path)
    handled = tmp_path / "handled.jsonl"
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(pipeline.run)
        await wait_until(lambda: log.exists() and REFUSAL in log.read_text(), seconds=60)
        write_token_file(token_file, fake_entra, jwt_lifetime_s=None)
        await wait_until(
            lambda: handled.exists() and len(handled.read_bytes().splitlines()) >= RECORDS,
            seconds=60,
        )
        observation = pipeline.observe()
        pipeline.stop()
    consumer = observation.actors["kafka_consumer"]
    assert consumer.exits.get("auth", 0) >= 1
    assert consumer.restarts >= 1
    assert observation.tokens[SCOPE].refresh_count >= 1
    assert await committed_offsets(sasl_kafka.plaintext, group, topic, 1) == {0: RECORDS}
    assert "eyJ" not in log.read_text()  # no JWT in any log line
