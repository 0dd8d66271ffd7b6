"""Benchmark results as sections of tables, printed to the console and written as Markdown.

A `Section` is one benchmark's table plus the targets it checks. Results are kept in a
JSON file next to the Markdown, so that a partial run (`--only`, the separate `--soak`)
replaces its own sections and keeps the others, each with the date it was measured.
The Markdown and the README's summary are always rendered from that merged set.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.bench.timing import Timing

__all__ = [
    "README_BEGIN",
    "README_END",
    "Results",
    "Section",
    "Target",
    "TargetCheck",
    "console_table",
    "markdown_table",
    "micro_section",
    "ns",
    "ratio",
    "update_readme",
]

README_BEGIN = "<!-- benchmarks:begin (written by scripts/bench/run) -->"
README_END = "<!-- benchmarks:end -->"


def ns(value: float) -> str:
    """Nanoseconds as the tables show them: whole, with thousands separators."""
    return f"{value:,.0f}"


def ratio(value: float) -> str:
    """A ratio as the tables show it."""
    return f"{value:,.2f}x" if value < 10 else f"{value:,.1f}x"


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One target of the issue: our figure, the target, the fastest peer, and the verdict."""

    what: str
    ours: str
    target: str
    verdict: str
    """"met", "met on the ratio" (see Target) or "**missed**"."""
    best_peer: str = ""

    @classmethod
    def judged(
        cls, what: str, ours: str, target: str, *, met: bool, best_peer: str = ""
    ) -> TargetCheck:
        """A check whose verdict is plainly met or missed."""
        return cls(what, ours, target, "met" if met else "**missed**", best_peer)


@dataclass(frozen=True, slots=True)
class Section:
    """One benchmark's table, the targets it checks, and notes on how it was measured."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    checks: list[TargetCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    measured: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        checks = [TargetCheck(**check) for check in data.pop("checks", [])]
        return cls(**data, checks=checks)


@dataclass(frozen=True, slots=True)
class Target:
    """A target in ns per operation, and the peer figure the issue set it against.

    The ns were measured on a quiet machine; on a loaded one every figure is higher, so
    a target is also met when ours stays within the same ratio of that peer measured in
    the same run ("the ratio is what counts").
    """

    ns: float
    peer: str | None = None
    peer_ns: float | None = None

    @property
    def ratio(self) -> float | None:
        """The target as a share of the peer's figure."""
        return self.ns / self.peer_ns if self.peer_ns else None


def micro_section(
    key: str,
    title: str,
    timings: Sequence[Timing],
    *,
    target: Target,
    what: str,
    notes: Iterable[str] = (),
) -> Section:
    """A table of ns/op (min, median) and the ratio to ours, checking ours against `target`.

    Ratios and verdicts use the min of the rounds, as `timeit` advises: other processes
    only ever add time, so the fastest round is the closest to the code's own cost.
    The median shows how much the machine got in the way.
    """
    ours = next(t for t in timings if t.case.role == "ours")
    rows = [
        [t.case.name, t.case.role, ns(t.min), ns(t.median), ratio(t.min / ours.min)]
        for t in timings
    ]
    peers = [t for t in timings if t.case.role == "peer"]
    fastest = min(peers, key=lambda t: t.min, default=None)
    reference = next((t for t in peers if t.case.name == target.peer), None)
    measured = f"{ns(ours.min)} ns"
    wanted = f"<= {ns(target.ns)} ns"
    verdict = "met" if ours.min <= target.ns else "**missed**"
    if reference is not None and target.ratio is not None:
        now = ours.min / reference.min
        measured += f" ({ratio(now)} {target.peer})"
        wanted += f" ({ratio(target.ratio)} {target.peer})"
        if verdict != "met" and now <= target.ratio:
            verdict = "met on the ratio"
    check = TargetCheck(
        what=what,
        ours=measured,
        target=wanted,
        verdict=verdict,
        best_peer=f"{fastest.case.name} {ns(fastest.min)} ns" if fastest else "",
    )
    return Section(
        key=key,
        title=title,
        columns=["variant", "kind", "min ns/op", "median ns/op", "min vs ours"],
        rows=rows,
        checks=[check],
        notes=list(notes),
    )


def console_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned with spaces: text left, figures right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows, strict=True)]
    numeric = [all(_is_figure(row[i]) for row in rows) for i in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table, figures right-aligned."""
    numeric = [bool(rows) and all(_is_figure(row[i]) for row in rows) for i in range(len(columns))]
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    body = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join([header, rule, *body])


def _is_figure(cell: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,.]+\s*(x|%|ns|µs|KiB|MiB|/s)?", cell.strip()))


@dataclass
class Results:
    """Every section measured so far, by key, and the machine of the latest run."""

    machine: dict[str, str]
    sections: dict[str, Section]

    @classmethod
    def load(cls, path: Path) -> Results:
        """The results stored at `path`, or none if there is no such file."""
        if not path.exists():
            return cls(machine={}, sections={})
        data = json.loads(path.read_text())
        sections = {key: Section.from_json(s) for key, s in data["sections"].items()}
        return cls(machine=data["machine"], sections=sections)

    def merge(self, machine: dict[str, str], sections: Iterable[Section]) -> None:
        """Replace the sections measured now (and the machine); keep the others."""
        self.machine = machine
        for section in sections:
            self.sections[section.key] = section

    def save(self, path: Path, order: Sequence[str]) -> None:
        """Write the JSON, sections in benchmark order."""
        path.parent.mkdir(parents=True, exist_ok=True)
        ordered = {key: dataclasses.asdict(self.sections[key]) for key in self._keys(order)}
        data = {"machine": self.machine, "sections": ordered}
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def _keys(self, order: Sequence[str]) -> list[str]:
        known = [key for key in order if key in self.sections]
        return known + sorted(set(self.sections) - set(known))

    def summary_markdown(self, order: Sequence[str]) -> str:
        """The targets table: what, ours, the fastest peer, the target, and whether it is met."""
        rows = [
            [c.what, c.ours, c.best_peer or "-", c.target, c.verdict]
            for key in self._keys(order)
            for c in self.sections[key].checks
        ]
        return markdown_table(["what", "ours", "fastest peer", "target", "verdict"], rows)

    def machine_line(self) -> str:
        """One line naming the machine, Python, date and commit of the latest run."""
        m = self.machine
        return (
            f"Measured {m.get('date', '?')} on {m.get('cpu', '?')} ({m.get('nproc', '?')} cores), "
            f"{m.get('python', '?')}, commit {m.get('commit', '?')}."
        )

    def markdown(self, order: Sequence[str]) -> str:
        """The whole results page."""
        parts = [
            "# Benchmarks",
            "",
            "Written by `scripts/bench/run` (do not edit by hand; see scripts/bench/__init__.py "
            "for what each benchmark measures and how).",
            "",
            self.machine_line(),
            "",
            "Peers: " + ", ".join(self.machine.get("peers", "").split(";")) + ".",
            "",
            "## Targets",
            "",
            self.summary_markdown(order),
        ]
        for key in self._keys(order):
            section = self.sections[key]
            parts += ["", f"## {section.title}", ""]
            if section.measured != self.machine.get("date"):
                parts += [f"Measured {section.measured}.", ""]
            parts.append(markdown_table(section.columns, section.rows))
            if section.notes:
                parts.append("")
                parts += [f"- {note}" for note in section.notes]
        return "\n".join(parts) + "\n"


def update_readme(readme: Path, block: str) -> None:
    """Replace the text between the README's benchmark markers with `block`."""
    text = readme.read_text()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{readme} has no {README_BEGIN!r} ... {README_END!r} block")
    text = text[: begin + len(README_BEGIN)] + "\n" + block.strip() + "\n" + text[end:]
    readme.write_text(text)
