"""Scenario 8: bad configuration and bad environment exit 2 with one clear line, writing nothing.

tests/supervisor/test_cli.py already covers the bad files (missing file, bad TOML,
unknown key, wrong type, missing AZURE_CLIENT_SECRET, a handler module that does not
exist). These are the cases around them: what the environment gets wrong (overrides,
secret and token files that are not there or cannot be read, a health port already
taken, a handler module that fails while importing) and configuration that can only be
judged against the machine (a jsonl sink in a directory that does not exist). Each
process is pointed at a real broker with a log topic, and the test checks afterwards
that the topic, its dead-letter topic and the log topic stay empty and the group
committed nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from reliability_harness import PipelineProcess, pipeline_sections, write_config
from reliability_report import ReliabilityReport

from supervisor.testing import committed_offsets, create_topics, read_topic, unique_name

SCOPE = "https://kp.servicebus.windows.net/.default"
OAUTH = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"}

# name: (config overrides, environment, what the one stderr line must contain)
CASES: dict[str, tuple[dict[str, dict[str, object]], dict[str, str], str]] = {
    "override with a bad value": (
        {},
        {"KAFKA_PIPELINE_KAFKA__MAX_POLL_RECORDS": "many"},
        "kafka.max_poll_records: got 'many'; expected an integer",
    ),
    "override of an unknown key": (
        {},
        {"KAFKA_PIPELINE_KAFKA__BOOTSTRAP": "127.0.0.1:1"},
        "kafka.bootstrap: unknown key",
    ),
    "password file missing": (
        {
            "kafka": {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "kp",
                "sasl_password_file": "absent-password.txt",
            }
        },
        {},
        "kafka.sasl_password_file: cannot read",
    ),
    "certificate file missing": (
        {
            "kafka": OAUTH,
            "auth": {
                "method": "certificate",
                "tenant_id": "00000000-0000-0000-0000-0000000000aa",
                "client_id": "kp-client",
                "certificate_path": "absent-certificate.pem",
                "scope": SCOPE,
            },
        },
        {},
        "absent-certificate.pem does not exist",
    ),
    "token file missing": (
        {
            "kafka": OAUTH,
            "auth": {"method": "token_file", "token_file": "absent-token.json", "scope": SCOPE},
        },
        {},
        "absent-token.json",
    ),
    "token file unreadable": (
        {"kafka": OAUTH, "auth": {"method": "token_file", "token_file": ".", "scope": SCOPE}},
        {},
        "cannot be read",
    ),
    "handler module fails on import": (
        {"handler": {"target": "kp_broken_on_import:handle"}},
        {},
        "importing module 'kp_broken_on_import' failed: RuntimeError: no database URL set",
    ),
    "jsonl sink directory missing": (
        {"handler": {"target": "jsonl:absent-directory/handled.jsonl"}},
        {},
        "absent-directory",
    ),
    "health port taken": ({}, {}, "health.port"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(CASES))
async def test_a_bad_environment_exits_2_with_one_clear_line_and_writes_nothing(
    case: str,
    bootstrap_servers: str,
    taken_port: int,
    tmp_path: Path,
    processes: list[PipelineProcess],
    reliability_report: ReliabilityReport,
) -> None:
    """Exit 2 within seconds, one stderr line naming the problem, nothing on any topic."""
    overrides, env, expected = CASES[case]
    topic, logs, group = unique_name("badenv"), unique_name("badenv-logs"), unique_name("badenv-g")
    await create_topics(bootstrap_servers, [topic, f"{topic}.dlq", logs])
    sections = pipeline_sections(bootstrap_servers, topic, group, overrides)
    sections.setdefault("logging", {})["kafka_topic"] = logs
    if case == "health port taken":
        sections["health"]["port"] = taken_port
    (tmp_path / "kp_broken_on_import.py").write_text("raise RuntimeError('no database URL set')\n")
    env = {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    }
    process = PipelineProcess(tmp_path, write_config(tmp_path / "pipeline.toml", sections), env=env)
    processes.append(process)
    process.start()
    code: int | str
    try:
        code = await process.exit_code(within=15)
    except AssertionError:
        code = "still running after 15 s"
    process.kill()
    lines = process.stderr().splitlines()
    written = [
        record
        for name in (topic, f"{topic}.dlq", logs)
        for record in await read_topic(bootstrap_servers, name, expected=1, max_wait=0.5)
    ]
    committed = await committed_offsets(bootstrap_servers, group, topic, 1)
    reliability_report.record(
        f"8. bad environment: {case}",
        exit_code=code,
        stderr_lines=len(lines),
        records_written=len(written),
    )
    assert code == 2, f"exit {code}: {lines}"
    [line] = lines
    assert line.startswith("kafka-pipeline: configuration error: ")
    assert expected in line
    assert written == []
    assert committed == {0: None}
