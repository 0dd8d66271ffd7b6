"""The broker benchmarks (pipeline throughput, memory soaks) run end to end with tiny counts.

A smoke test against the session's broker, not a timed one: it checks that both
consumers read every record produced for them and that the results are written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.bench import cli, retry_tiers_bench

pytestmark = pytest.mark.broker


def test_pipeline_and_soak_consume_every_record_and_write_results(
    bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The broker benchmarks (the soaks in both modes) handle every record they produced and
    write their sections."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers)
    output = tmp_path / "benchmarks.md"
    cli.main(
        ["--quick", "--only", "pipeline,soak,soak-key", "--output", str(output), "--readme", "none"]
    )

    sections = json.loads(output.with_suffix(".json").read_text())["sections"]
    assert list(sections) == ["pipeline-throughput", "soak-memory", "soak-key-memory"]
    consumers = [row[0] for row in sections["pipeline-throughput"]["rows"]]
    assert consumers == ["ours: KafkaConsumerActor", "hand-written aiokafka loop"]
    for soak in ("soak-memory", "soak-key-memory"):
        handled_at_last_sample = sections[soak]["rows"][-1][0]
        assert handled_at_last_sample == f"{cli.QUICK.soak_records:,}"
    assert 'ordering "key", 256 in flight' in output.read_text()


def test_concurrency_bench_runs_every_case_over_every_record(
    bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The concurrency benchmark consumes the whole keyed topic in each of its cases (a
    case that lost a record would time out) and writes one row per case with its checks."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers)
    output = tmp_path / "benchmarks.md"
    cli.main(["--quick", "--only", "concurrency", "--output", str(output), "--readme", "none"])

    section = json.loads(output.with_suffix(".json").read_text())["sections"][
        "pipeline-concurrency"
    ]
    cases = [row[0] for row in section["rows"]]
    assert cases[0] == "hand-written aiokafka loop"
    assert len(cases) == 5
    assert len(section["checks"]) == 4


def test_retry_tiers_bench_brings_every_failed_record_back(
    bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry tiers benchmark handles the 90% in every case and, in the failing ones,
    every failed record once more from the tier (a lost one would time out)."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers)
    [section] = retry_tiers_bench.run(200, 1)
    assert [row[0] for row in section.rows] == list(retry_tiers_bench.CASES)
    assert "20 failed records succeed from the tier (20 at least)" in " ".join(section.notes)
    assert len(section.checks) == 2
