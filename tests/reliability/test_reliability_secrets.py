"""Scenario 7: configured secrets never appear in anything the process writes.

A random client secret (AZURE_CLIENT_SECRET), a random SASL password
(KAFKA_PIPELINE_KAFKA__SASL_PASSWORD) and a random token (in a token file) are
configured for four processes, run side by side:

- `working`: consumes and handles records, logs to a file and to a Kafka topic, with
  both secrets loaded into its configuration (auth method none, PLAINTEXT);
- `sasl`: SASL/PLAIN with the password, which the broker refuses: restarts, escalation;
- `token`: OAUTHBEARER with the token file, which the broker refuses: restarts, escalation;
- `secret`: a service principal with the client secret; Azure AD cannot be reached (it
  never can from here; HTTPS_PROXY also points azure-identity's requests at a closed
  local port), so the token refresher fails and retries until SIGTERM.

Every byte they write is searched: stdout, stderr, the log file, the log topic, the
jsonl sink, the dead-letter topic, /metrics, /healthz and /readyz while they run, and
`check-config` of each configuration. Neither a whole secret nor its first 16
characters may appear anywhere.
"""

from __future__ import annotations

import base64
import json
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from reliability_harness import (
    CLEAN_ENV,
    PipelineProcess,
    http_get,
    pipeline_sections,
    until,
    workload,
    write_config,
)
from reliability_report import ReliabilityReport

from supervisor.testing import create_topics, produce, read_topic, unique_name
from supervisor.testing.embedded_broker import free_port

pytestmark = pytest.mark.anyio

RECORDS = 50
QUICK_ESCALATION = {"max_restarts": 8, "backoff_base_s": 0.3, "backoff_max_s": 1}
"""Refused by the broker, these live a few seconds: long enough to be scraped."""


def _jwt_like(claims: dict[str, object]) -> str:
    """A token shaped like Azure AD's (three base64url parts), with random claims."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{part(json.dumps(claims).encode())}.{part(secrets.token_bytes(32))}"


def _leaks(secret_values: dict[str, str], blobs: dict[str, bytes]) -> list[str]:
    """Where any secret, or its first 16 characters, appears."""
    found = []
    for name, value in secret_values.items():
        for needle in (value, value[:16]):
            found += [
                f"{name} in {where}" for where, blob in blobs.items() if needle.encode() in blob
            ]
    return found


def _check_config(workdir: Path, config: Path, env: dict[str, str]) -> bytes:
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "check-config", str(config)],
        cwd=workdir,
        env={**CLEAN_ENV, **env},
        capture_output=True,
        timeout=60,
    )
    return result.stdout + result.stderr


async def _scrape(port: int) -> dict[str, bytes]:
    """/metrics, /healthz and /readyz of a running process, once it answers."""
    await until(lambda: http_get(port, "/healthz")[0] == 200, 30, f"port {port} answers")
    bodies = {}
    for path in ("/metrics", "/healthz", "/readyz"):
        status, body = await anyio.to_thread.run_sync(http_get, port, path)
        assert status in (200, 503), (path, status)
        bodies[path] = body
    return bodies


async def test_no_secret_appears_in_any_byte_the_process_writes(
    bootstrap_servers: str,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Four processes holding a client secret, a SASL password and a token leak none."""
    client_secret = "cs-" + secrets.token_urlsafe(30)
    sasl_password = "pw-" + secrets.token_urlsafe(30)
    token = _jwt_like({"aud": "https://kp.servicebus.windows.net", "nonce": secrets.token_hex(16)})
    secret_values = {"client secret": client_secret, "SASL password": sasl_password, "token": token}
    env = {
        "AZURE_CLIENT_SECRET": client_secret,
        "KAFKA_PIPELINE_KAFKA__SASL_PASSWORD": sasl_password,
    }
    topic, log_topic = unique_name("secrets"), unique_name("secrets-logs")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq", log_topic])
    await produce(bootstrap_servers, topic, workload("secret", RECORDS))
    scope = "https://kp.servicebus.windows.net/.default"
    azure = {"tenant_id": "00000000-0000-0000-0000-0000000000aa", "client_id": "kp-client"}
    variants: dict[str, dict[str, dict[str, object]]] = {
        "working": {"auth": {"method": "none"}, "logging": {"kafka_topic": log_topic}},
        "sasl": {
            "kafka": {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "kp-user",
            },
            "auth": {"method": "none"},
            "supervisor": QUICK_ESCALATION,
        },
        "token": {
            "kafka": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"},
            "auth": {"method": "token_file", "token_file": "token.json", "scope": scope},
            "supervisor": QUICK_ESCALATION,
        },
        "secret": {
            "kafka": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"},
            "auth": {"method": "secret", "scope": scope, **azure},
        },
    }
    no_egress = {"HTTPS_PROXY": f"http://127.0.0.1:{free_port()}", "NO_PROXY": ""}
    blobs: dict[str, bytes] = {}
    members: dict[str, tuple[PipelineProcess, int]] = {}
    configs: dict[str, dict[str, dict[str, object]]] = {}
    for name, overrides in variants.items():
        workdir = tmp_path / name
        workdir.mkdir()
        (workdir / "token.json").write_text(
            json.dumps({"access_token": token, "expires_on": int(time.time()) + 3600})
        )
        sections = pipeline_sections(
            bootstrap_servers, topic, unique_name(f"secrets-{name}"), overrides
        )
        sections.setdefault("logging", {})["file"] = "pipeline.log"
        config = write_config(workdir / "pipeline.toml", sections)
        configs[name] = sections
        process_env = {**env, **(no_egress if name == "secret" else {})}
        process = PipelineProcess(workdir, config, env=process_env, name=name)
        processes.append(process)
        members[name] = (process, int(str(sections["health"]["port"])))
        process.start()

    for name, (_, port) in members.items():
        for path, body in (await _scrape(port)).items():
            blobs[f"{name} {path}"] = body
    for name, (process, _) in members.items():
        # the same file but another health port: the running process holds its own, and
        # check-config (which checks the port as run does) would stop before printing
        checked = write_config(
            process.workdir / "check.toml",
            {**configs[name], "health": {**configs[name]["health"], "port": free_port()}},
        )
        blobs[f"check-config {name}"] = _check_config(process.workdir, checked, process.env)
    assert b"\n# valid; supervision tree" in blobs["check-config working"]
    sink = tmp_path / "working" / "handled.jsonl"
    await until(
        lambda: sink.exists() and sink.read_bytes().count(b"\n") >= RECORDS,
        30,
        "handled",
        alive=members["working"][0],
    )
    blobs["working /metrics after handling"] = http_get(members["working"][1], "/metrics")[1]
    for name in ("working", "secret"):
        members[name][0].signal(signal.SIGTERM)
    exits = {name: await process.exit_code(within=30) for name, (process, _) in members.items()}
    assert exits == {"working": 0, "sasl": 1, "token": 1, "secret": 0}

    for process, _ in members.values():
        for path in [
            *process.output_files(),
            *process.workdir.glob("*.log"),
            *process.workdir.glob("*.jsonl"),
        ]:
            blobs[str(path.relative_to(tmp_path))] = path.read_bytes()
    for name in (log_topic, f"{topic}.dlq"):
        records = await read_topic(bootstrap_servers, name, expected=10**6, max_wait=2)
        blobs[f"topic {name}"] = b"\n".join(
            (r.value or b"") + b"".join(v for _, v in r.headers) for r in records
        )
    assert blobs[f"topic {log_topic}"], "the working process shipped logs to its topic"
    assert _leaks(secret_values, blobs) == []
    reliability_report.record(
        "7. secrets",
        processes=len(members),
        places_searched=len(blobs),
        bytes_searched=sum(len(blob) for blob in blobs.values()),
        leaks=0,
    )
