"""Scenario 8: bad configuration and bad environment exit 2 with one clear line, writing nothing.

tests/supervisor/test_cli.py already covers the bad files (missing file, bad TOML,
unknown key, wrong type, missing AZURE_CLIENT_SECRET, a handler module that does not
exist). These are the cases around them: what the environment gets wrong (overrides
with bad values or matching no key, secret and token files that are not there or
cannot be read, a health port already taken, a handler module that fails while
importing), numbers outside their range (NaN, infinity, 1e308, beyond int32), Kafka
names that cannot work (servers, topics, dead-letter patterns), loops (writing to a
consumed topic) and configuration that can only be judged against the machine (a
jsonl sink or a log file that cannot be appended to, a health address that cannot be
bound). Each
process is pointed at a real broker with a log topic, and the test checks afterwards
that the topic, its dead-letter topic and the log topic stay empty and the group
committed nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from reliability_harness import PipelineProcess, pipeline_sections, write_config
from reliability_report import ReliabilityReport

from supervisor.testing import committed_offsets, create_topics, read_topic, unique_name

SCOPE = "https://kp.servicebus.windows.net/.default"
OAUTH = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"}

# name: (config overrides, environment, what the one stderr line must contain); in the
# overrides' strings `{topic}` is the consumed topic ({{ and }} stand for braces)
CASES: dict[str, tuple[dict[str, dict[str, object]], dict[str, str], str]] = {
    "override with a bad value": (
        {},
        {"KAFKA_PIPELINE_KAFKA__MAX_POLL_RECORDS": "many"},
        "kafka.max_poll_records: got 'many'; expected an integer",
    ),
    "override of an unknown key": (
        {},
        {"KAFKA_PIPELINE_KAFKA__BOOTSTRAP": "127.0.0.1:1"},
        "KAFKA_PIPELINE_KAFKA__BOOTSTRAP: matches no setting",
    ),
    "override one underscore short": (
        {},
        {"KAFKA_PIPELINE_KAFKA_TOPICS": "elsewhere"},
        "did you mean KAFKA_PIPELINE_KAFKA__TOPICS?",
    ),
    "NaN from the environment": (
        {},
        {"KAFKA_PIPELINE_SUPERVISOR__PERIOD_S": "nan"},
        "supervisor.period_s: got nan; allowed: (0, 86_400] s",
    ),
    "backoff NaN": ({"supervisor": {"backoff_base_s": math.nan}}, {}, "backoff_base_s: got nan"),
    "retry delay infinite": ({"retry": {"max_delay_s": math.inf}}, {}, "max_delay_s: got inf"),
    "breaker recovery NaN": (
        {"breaker": {"recovery_timeout_s": math.nan}},
        {},
        "breaker.recovery_timeout_s: got nan",
    ),
    "log flush interval infinite": (
        {"logging": {"flush_interval_s": math.inf}},
        {},
        "logging.flush_interval_s: got inf",
    ),
    "commit interval 1e308": (
        {"kafka": {"commit_interval_s": 1e308}},
        {},
        "kafka.commit_interval_s: got 1e+308; allowed: 0.01..600 s",
    ),
    "session timeout above int32": (
        {"kafka": {"session_timeout_ms": 2**31}},
        {},
        "kafka.session_timeout_ms: got 2147483648",
    ),
    "bootstrap servers unparseable": (
        {"kafka": {"bootstrap_servers": "broker-without-port"}},
        {},
        "kafka.bootstrap_servers: 'broker-without-port' is not host:port",
    ),
    "invalid topic name": (
        {"kafka": {"topics": ["{topic}", "no spaces"]}},
        {},
        "kafka.topics: 'no spaces' is not a valid topic name",
    ),
    "dead-letter pattern with an attribute": (
        {"dead_letter": {"topic": "{{topic.__class__}}"}},
        {},
        "dead_letter.topic: '{topic.__class__}' may only use the placeholder {topic}",
    ),
    "dead-letter topic is a consumed topic": (
        {"dead_letter": {"topic": "{{topic}}"}},
        {},
        "is also consumed from",
    ),
    "forward to a consumed topic": (
        {"handler": {"target": "forward:{topic}"}},
        {},
        "handler.target: forward:",
    ),
    "log topic is a consumed topic": (
        {"logging": {"kafka_topic": "{topic}"}},
        {},
        "logging.kafka_topic:",
    ),
    "log file on /dev/full": (
        {"logging": {"file": "/dev/full"}},
        {},
        "logging.file: /dev/full is a device, FIFO or socket",
    ),
    "log file is a directory": ({"logging": {"file": "."}}, {}, "is a directory"),
    "log file in a missing directory": (
        {"logging": {"file": "absent-directory/pipeline.log"}},
        {},
        "absent-directory does not exist",
    ),
    "health host empty": ({"health": {"host": ""}}, {}, "health.host: must not be empty"),
    "health host unresolvable": (
        {"health": {"host": "kp-no-such-host.invalid"}},
        {},
        "health.host: 'kp-no-such-host.invalid' does not resolve",
    ),
    "health port 0 on another machine's address": (
        {"health": {"host": "192.0.2.1", "port": 0}},
        {},
        "health.port: 0 on 192.0.2.1 cannot be bound",
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


def _naming(overrides: dict[str, dict[str, object]], topic: str) -> dict[str, dict[str, object]]:
    """`overrides` with `{topic}` in their strings (and lists of strings) replaced."""

    def named(value: object) -> object:
        if isinstance(value, str):
            return value.format(topic=topic)
        if isinstance(value, list):
            return [named(item) for item in value]
        return value

    return {table: {k: named(v) for k, v in keys.items()} for table, keys in overrides.items()}


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
    sections = pipeline_sections(bootstrap_servers, topic, group, _naming(overrides, topic))
    sections.setdefault("logging", {}).setdefault("kafka_topic", logs)
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
