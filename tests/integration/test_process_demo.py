"""`kafka-pipeline demo --duration 20`: the main job shows handling, a dead letter, a restart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _summary(output: str) -> dict[str, str]:
    """The summary's `  name   value` lines after the line `summary`, as {name: value}."""
    lines = output.split("\nsummary\n", 1)[1].splitlines()
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines)


def test_the_demo_runs_its_course_and_loses_nothing(tmp_path: Path) -> None:
    """Exit 0; records handled, poison dead-lettered, one supervised restart, nothing lost."""
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "demo", "--duration", "20"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    summary = _summary(result.stdout)
    produced = re.fullmatch(
        r"(\d+) records: (\d+) valid events, (\d+) poison, (\d+) replays", summary["produced"]
    )
    assert produced is not None
    _, valid, poison, replays = map(int, produced.groups())
    assert int(summary["handled"]) == valid > 0
    assert summary["dead-lettered"].startswith(f"{poison} (demo.events.dlq holds {poison})")
    assert poison >= 1
    assert int(summary["deduplicated"].split()[0]) >= replays
    assert summary["restarts"] == "kafka_consumer x1"
    assert summary["nothing lost"] == f"every one of the {valid} valid events was handled"
    assert ">> supervisor restarted kafka_consumer" in result.stdout
    logged = re.fullmatch(r"(\d+) lines, removed with (\S+) \(--keep keeps them\)", summary["logs"])
    assert logged is not None
    assert int(logged[1]) > 0
    assert Path(logged[2]).parent == tmp_path
    assert list(tmp_path.glob("kafka-pipeline-demo-*")) == []


def test_the_demo_keeps_its_directory_when_asked(tmp_path: Path) -> None:
    """With --keep the summary names the kept log, which holds the pipeline's JSON lines."""
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "demo", "--duration", "6", "--keep"],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    kept = re.fullmatch(r"(\S+) \(kept\)", _summary(result.stdout)["logs"])
    assert kept is not None
    log = Path(kept[1])
    assert log.parent.parent == tmp_path
    assert log.read_bytes().startswith(b"{")
    assert (log.parent / "broker.log").exists()
