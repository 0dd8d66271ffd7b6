"""A fake Azure CLI: a real `az` executable on PATH whose answers a test scripts.

azure-identity's AzureCliCredential runs it as a subprocess, exactly as it runs the
Azure CLI; only the CLI's answer is scripted (logging in to Azure is not possible here).
Registered as a pytest plugin by the root conftest: the `fake_az` fixture puts it first
on PATH for one test.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

_AZ_SCRIPT = """#!/bin/sh
dir="$(dirname "$0")"
printf '%s\\n' "$*" >> "$dir/calls.log"
if [ -f "$dir/delay" ]; then sleep "$(cat "$dir/delay")"; fi
n=$(wc -l < "$dir/calls.log" | tr -d ' ')
sed "s/{CALL}/$n/g" "$dir/stdout"
cat "$dir/stderr" >&2
exit "$(cat "$dir/exit_code")"
"""


class FakeAz:
    """An `az` on PATH answering `az account get-access-token` as the real CLI does.

    Tokens it prints are `<prefix>-<n>` where n counts the calls, so a test can
    tell a cached token from a fetched one.
    """

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        executable = directory / "az"
        executable.write_text(_AZ_SCRIPT)
        executable.chmod(executable.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        (directory / "calls.log").write_text("")
        monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
        self.returns_token("az-token", expires_in=3600)

    def returns_token(self, prefix: str, *, expires_in: float) -> None:
        """Answer like a logged-in CLI, with a token valid for `expires_in` seconds."""
        expires_on = datetime.now(UTC) + timedelta(seconds=expires_in)
        document = {
            "accessToken": f"{prefix}-{{CALL}}",
            "expiresOn": expires_on.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f"),
            "expires_on": int(expires_on.timestamp()),
            "subscription": "22222222-2222-2222-2222-222222222222",
            "tenant": "00000000-0000-0000-0000-0000000000aa",
            "tokenType": "Bearer",
        }
        self._answer(json.dumps(document, indent=2), "", 0)

    def is_not_logged_in(self) -> None:
        """Answer like a CLI nobody has logged in to."""
        self._answer("", "ERROR: Please run 'az login' to setup account.\n", 1)

    def fails_with(self, stderr: str, *, stdout: str = "") -> None:
        """Exit 1 with `stderr`, as the CLI does on a service error."""
        self._answer(stdout, stderr, 1)

    def prints(self, stdout: str) -> None:
        """Exit 0 printing `stdout` (e.g. something that is not a token)."""
        self._answer(stdout, "", 0)

    def hangs_for(self, seconds: float) -> None:
        """Sleep `seconds` before answering."""
        (self.directory / "delay").write_text(str(seconds))

    def calls(self) -> list[str]:
        """The argument lines of every invocation so far."""
        return (self.directory / "calls.log").read_text().splitlines()

    def _answer(self, stdout: str, stderr: str, exit_code: int) -> None:
        (self.directory / "stdout").write_text(stdout)
        (self.directory / "stderr").write_text(stderr)
        (self.directory / "exit_code").write_text(str(exit_code))


@pytest.fixture
def fake_az(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAz:
    """A scripted `az` first on PATH, answering with a valid token until told otherwise."""
    return FakeAz(tmp_path / "az-bin", monkeypatch)
