"""The CLI as a user runs it (`python -m supervisor`): configuration errors and check-config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from supervisor import cli
from supervisor.testing import committed_offsets, create_topics, read_topic, unique_name

CLEAN_ENV = {
    name: value
    for name, value in os.environ.items()
    if not name.startswith(("KAFKA_PIPELINE_", "AZURE_"))
}


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        cwd=cwd,
        env={**CLEAN_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


BROKEN_CONFIGS = {
    "bad TOML": ("[kafka\n", "config: not valid TOML"),
    "unknown key": ("[kafka]\nbootstrap = 'x'\n", "kafka.bootstrap: unknown key"),
    "wrong type": (
        "[kafka]\nsession_timeout_ms = 'soon'\n",
        "kafka.session_timeout_ms: got 'soon'; expected an integer",
    ),
    "missing secret": (
        "[kafka]\nsasl_mechanism = 'OAUTHBEARER'\nsecurity_protocol = 'SASL_SSL'\n"
        "[auth]\nmethod = 'secret'\ntenant_id = 't'\nclient_id = 'c'\n",
        "auth.client_secret: required for auth.method = 'secret'",
    ),
    "bad handler path": (
        "[handler]\ntarget = 'kp_no_such_module_anywhere:handle'\n",
        "handler.target 'kp_no_such_module_anywhere:handle': cannot import module",
    ),
    "jsonl directory missing": (
        "[handler]\ntarget = 'jsonl:absent-directory/out.jsonl'\n",
        "handler.target 'jsonl:absent-directory/out.jsonl': directory",
    ),
    "health port taken": (
        "[health]\nport = {taken_port}\n",
        "health.port: {taken_port} on 127.0.0.1 cannot be bound: [Errno 98]",
    ),
    "NaN": ("[supervisor]\nperiod_s = nan\n", "supervisor.period_s: got nan; allowed:"),
    "infinity": ("[logging]\nflush_interval_s = inf\n", "logging.flush_interval_s: got inf"),
    "log file on /dev/full": (
        "[logging]\nfile = '/dev/full'\n",
        "logging.file: /dev/full is a device, FIFO or socket",
    ),
    "dead-letter pattern": (
        "[dead_letter]\ntopic = '{{topic.__class__}}'\n",
        "dead_letter.topic: '{{topic.__class__}}' may only use the placeholder {{topic}}",
    ),
}
"""name: (the file, the start of its one stderr line); `{taken_port}` is a port in use
(both are format strings: `{{` and `}}` stand for braces)."""


@pytest.fixture(scope="module")
def watched(bootstrap_servers: str) -> tuple[str, str, str]:
    """A topic, a log topic and a group that a process which got past its config would use."""
    names = unique_name("cli"), unique_name("cli-logs"), unique_name("cli-group")
    anyio.run(create_topics, bootstrap_servers, names[:2])
    return names


@pytest.mark.anyio
@pytest.mark.parametrize("case", [*BROKEN_CONFIGS, "missing file"])
async def test_each_kind_of_bad_config_exits_2_with_one_line_and_writes_nothing(
    case: str,
    bootstrap_servers: str,
    watched: tuple[str, str, str],
    taken_port: int,
    tmp_path: Path,
) -> None:
    """Exit 2, the problem on one stderr line without a traceback, no record and no commit."""
    topic, logs, group = watched
    config = tmp_path / "pipeline.toml"
    if case == "missing file":
        expected = f"config: file not found: {str(config)!r}"
    else:
        text, expected = (part.format(taken_port=taken_port) for part in BROKEN_CONFIGS[case])
        config.write_text(text)
    result = _cli(
        "run",
        "--config",
        str(config),
        cwd=tmp_path,
        env={
            "KAFKA_PIPELINE_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
            "KAFKA_PIPELINE_KAFKA__TOPICS": topic,
            "KAFKA_PIPELINE_KAFKA__GROUP_ID": group,
            "KAFKA_PIPELINE_LOGGING__KAFKA_TOPIC": logs,
        },
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"kafka-pipeline: configuration error: {expected}")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert await read_topic(bootstrap_servers, logs, expected=1, max_wait=0.3) == []
    assert await committed_offsets(bootstrap_servers, group, topic, 1) == {0: None}


def test_check_config_prints_the_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    """Exit 0; the file's values, defaults and environment overrides shown, the secret masked."""
    config = tmp_path / "pipeline.toml"
    config.write_text(
        "[kafka]\nsecurity_protocol = 'SASL_PLAINTEXT'\nsasl_mechanism = 'PLAIN'\n"
        "sasl_username = 'svc'\n[handler]\ntarget = 'jsonl:out.jsonl'\n"
    )
    secret = "s3cr3t-Pa55word"
    result = _cli(
        "check-config",
        str(config),
        cwd=tmp_path,
        env={
            "KAFKA_PIPELINE_KAFKA__SASL_PASSWORD": secret,
            "KAFKA_PIPELINE_KAFKA__GROUP_ID": "from-env",
        },
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert secret not in result.stdout
    assert 'sasl_password = "***"' in result.stdout
    assert 'sasl_username = "svc"' in result.stdout
    assert 'group_id = "from-env"' in result.stdout
    assert "max_restarts = 5" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "# valid; supervision tree (kafka-pipeline): "
        "log_shipper, health_server, breaker_monitor, kafka_consumer"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[handler]\ntarget = 'kp_absent_module:handle'\n",
            "handler.target 'kp_absent_module:handle'",
        ),
        ("[health]\nport = {taken_port}\n", "health.port: {taken_port} on 127.0.0.1"),
        ("[logging]\nfile = 'absent/p.log'\n", "logging.file: "),
        ("[health]\nhost = 'kp-no-such-host.invalid'\n", "health.host: "),
    ],
    ids=["handler import", "health port taken", "log directory missing", "health host"],
)
def test_check_config_refuses_what_run_would_refuse_at_startup(
    text: str, expected: str, taken_port: int, tmp_path: Path
) -> None:
    """check-config runs run's startup checks (one function): the same one-line error."""
    config = tmp_path / "pipeline.toml"
    config.write_text(text.format(taken_port=taken_port))
    result = _cli("check-config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"kafka-pipeline: configuration error: {expected.format(taken_port=taken_port)}"
    )
    assert result.stdout == ""


def test_check_config_prints_control_characters_escaped(tmp_path: Path) -> None:
    """A group id with a newline and a NUL prints as one escaped TOML line, read back intact."""
    config = tmp_path / "pipeline.toml"
    config.write_text('[kafka]\ngroup_id = "evil\\nline\\u0000x"\n')
    result = _cli("check-config", str(config), cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    [line] = [line for line in result.stdout.splitlines() if line.startswith("group_id")]
    assert line == 'group_id = "evil\\nline\\u0000x"'
    assert "\x00" not in result.stdout


def test_any_error_while_validating_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unforeseen error type raised while the file is validated (stood in for by a
    patched loader: every known case is a ConfigError) still exits 2 with one line."""

    def broken_loader(path: Path) -> object:
        raise ZeroDivisionError("a bug\nover two lines")

    monkeypatch.setattr(cli, "load_config", broken_loader)
    assert cli.main(["check-config", str(tmp_path / "pipeline.toml")]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "kafka-pipeline: configuration error: ZeroDivisionError: a bug over two lines\n"
    )
    assert captured.out == ""


@pytest.mark.parametrize(
    "args",
    [(), ("demo", "--duration", "-3")],
    ids=["no command", "negative duration"],
)
def test_usage_errors_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    """A command line argparse refuses exits 2 with its usage message."""
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: kafka-pipeline" in result.stderr
