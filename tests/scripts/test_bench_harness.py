"""The benchmark harness (scripts/bench) runs end to end with tiny counts and writes its results.

Smoke tests, not timed ones: the figures of a tiny run mean nothing, so nothing here
asserts on them; what is checked is that every benchmark runs, that every target gets a
verdict, and that the results file and the README block are written from the same
results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scripts.bench import cli
from scripts.bench.report import (
    README_BEGIN,
    README_END,
    Results,
    Section,
    TargetCheck,
    markdown_table,
    update_readme,
)
from scripts.bench.timing import rounds_in_rotation

MICRO = ("retry", "breaker", "logging", "supervisor")


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    """A README with an outdated benchmark block between text that must stay."""
    path = tmp_path / "README.md"
    path.write_text(
        f"# Title\n\n## Performance\n\n{README_BEGIN}\nold table\n{README_END}\n\nAfter.\n"
    )
    return path


def test_quick_run_writes_every_micro_section_and_the_readme_block(
    tmp_path: Path, readme: Path
) -> None:
    """A quick run of the in-process benchmarks writes their sections, verdicts and README table."""
    output = tmp_path / "docs" / "benchmarks.md"
    cli.main(
        ["--quick", "--only", ",".join(MICRO), "--output", str(output), "--readme", str(readme)]
    )

    stored = json.loads(output.with_suffix(".json").read_text())
    expected = [key for key in cli.SECTION_ORDER if key.split("-")[0] in MICRO]
    assert list(stored["sections"]) == expected
    checks = [check for section in stored["sections"].values() for check in section["checks"]]
    assert checks
    assert {check["verdict"] for check in checks} <= {"met", "met on the ratio", "**missed**"}
    page = output.read_text()
    for section in stored["sections"].values():
        assert f"## {section['title']}" in page
    text = readme.read_text()
    assert "old table" not in text
    assert text.startswith("# Title\n")
    assert text.endswith("After.\n")
    assert "docs/benchmarks.md" in text
    assert all(check["what"] in text for check in checks)


def test_a_partial_run_keeps_the_sections_it_did_not_measure(tmp_path: Path) -> None:
    """Results merged from a later partial run replace only the sections that run measured."""
    store = tmp_path / "benchmarks.json"
    first = Results({"date": "first"}, {})
    first.merge({"date": "first"}, [_section("a", "old a"), _section("b", "old b")])
    first.save(store, ["a", "b"])

    later = Results.load(store)
    later.merge({"date": "second"}, [_section("b", "new b")])

    assert later.sections["a"].title == "old a"
    assert later.sections["b"].title == "new b"
    assert later.machine["date"] == "second"


def test_update_readme_refuses_a_readme_without_the_markers(tmp_path: Path) -> None:
    """A README without the benchmark markers is reported, not silently left stale."""
    path = tmp_path / "README.md"
    path.write_text("# Title\n")
    with pytest.raises(ValueError, match="benchmarks:begin"):
        update_readme(path, "table")


@given(st.lists(st.integers(), min_size=1, max_size=8, unique=True), st.integers(1, 20))
def test_every_round_runs_every_case_once_starting_one_later(items: list[int], rounds: int) -> None:
    """Interleaving: each round holds every case exactly once, each starting one case later."""
    order = list(rounds_in_rotation(items, rounds))
    for number in range(rounds):
        this_round = [item for round_number, item in order if round_number == number]
        assert sorted(this_round) == sorted(items)
        assert this_round[0] == items[number % len(items)]


@given(st.lists(st.lists(st.text(max_size=5), min_size=3, max_size=3), max_size=5))
def test_markdown_tables_have_one_line_per_row_and_escape_pipes(rows: list[list[str]]) -> None:
    """A Markdown table has a header, a rule and one line per row, whatever the cells hold."""
    cells = [[cell.replace("\n", " ").replace("\r", " ") for cell in row] for row in rows]
    table = markdown_table(["a", "b", "c"], cells).split("\n")
    assert len(table) == 2 + len(cells)
    assert all(line.count("|") - line.count("\\|") == 4 for line in table)


def _section(key: str, title: str) -> Section:
    return Section(key, title, ["x"], [["1"]], [TargetCheck.judged(title, "1", "<= 2", met=True)])
