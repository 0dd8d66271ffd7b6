"""The command line: run the benchmarks, print their tables, write the results.

    scripts/bench/run                 # everything but the soak (a few minutes)
    scripts/bench/run --soak          # ... and the memory soaks (a million records each)
    scripts/bench/run --only retry,breaker
    scripts/bench/run --quick --output /tmp/bench.md --readme none   # a smoke run

A full run rewrites the results (docs/benchmarks.md, its JSON twin, and the table between
the README's benchmark markers); sections not run this time are kept from the previous
run with their own date. `--quick` runs tiny counts to check that everything works and
writes nothing unless `--output` is given; `--print-only` never writes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.bench import (
    breaker_bench,
    concurrency_bench,
    download_bench,
    logging_bench,
    pipeline_bench,
    retry_bench,
    retry_tiers_bench,
    soak_bench,
    supervisor_bench,
)
from scripts.bench.machine import describe_machine
from scripts.bench.report import Results, Section, console_table, update_readme

ROOT = Path(__file__).resolve().parents[2]
MIN_REPEATS = 7


@dataclass(frozen=True, slots=True)
class Scale:
    """How much each benchmark does: per round, and how many rounds."""

    repeats: int
    retry_calls: int
    breaker_calls: int
    log_records: int
    crashes: int
    rejections: int
    pipeline_records: int
    pipeline_runs: int
    concurrency_records: int
    retry_tier_records: int
    retry_tier_rounds: int
    """Rounds of the retry tiers' two cases: a run lasts about half a second, and on a
    machine shared with other work single rounds' ratios ranged 0.7x-1.1x, too wide for
    a median of three."""
    soak_records: int
    download_files: int


FULL = Scale(
    repeats=9,
    retry_calls=20_000,
    breaker_calls=20_000,
    log_records=10_000,
    crashes=2_000,
    rejections=1_000_000,
    pipeline_records=200_000,
    pipeline_runs=3,
    concurrency_records=50_000,
    retry_tier_records=10_000,
    retry_tier_rounds=9,
    soak_records=1_000_000,
    download_files=3_000,
)
QUICK = Scale(
    repeats=MIN_REPEATS,
    retry_calls=100,
    breaker_calls=100,
    log_records=100,
    crashes=20,
    rejections=1_000,
    pipeline_records=2_000,
    pipeline_runs=1,
    concurrency_records=2_000,
    retry_tier_records=2_000,
    retry_tier_rounds=1,
    soak_records=2_000,
    download_files=200,
)


def benchmarks(scale: Scale, runner: asyncio.Runner) -> dict[str, Callable[[], list[Section]]]:
    """Every benchmark by name, in report order; the soaks run only when asked for."""
    return {
        "retry": lambda: retry_bench.run(scale.retry_calls, scale.repeats, runner),
        "breaker": lambda: breaker_bench.run(
            scale.breaker_calls, scale.repeats, runner, rejections=scale.rejections
        ),
        "logging": lambda: logging_bench.run(scale.log_records, scale.repeats, runner),
        "supervisor": lambda: supervisor_bench.run(scale.crashes, scale.repeats),
        "pipeline": lambda: pipeline_bench.run(scale.pipeline_records, scale.pipeline_runs),
        "concurrency": lambda: concurrency_bench.run(
            scale.concurrency_records, scale.pipeline_runs, scale.pipeline_records
        ),
        "retry_tiers": lambda: retry_tiers_bench.run(
            scale.retry_tier_records, scale.retry_tier_rounds
        ),
        "download": lambda: download_bench.run(scale.download_files, scale.pipeline_runs + 2),
        "soak": lambda: soak_bench.run(scale.soak_records),
        "soak-key": lambda: soak_bench.run(scale.soak_records, "soak-key"),
    }


SECTION_ORDER = (
    "retry-success-sync",
    "retry-success-async",
    "retry-fails-twice-sync",
    "retry-fails-twice-async",
    "breaker-closed-sync",
    "breaker-closed-async",
    "breaker-open-sync",
    "breaker-open-async",
    "breaker-open-memory",
    "logging-json-record",
    "supervisor-restart",
    "pipeline-throughput",
    "pipeline-concurrency",
    "pipeline-retry-tiers",
    "download-throughput",
    "soak-memory",
    "soak-key-memory",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--soak", action="store_true", help="also run the memory soaks")
    parser.add_argument(
        "--only",
        help="comma-separated benchmarks: retry, breaker, logging, supervisor, pipeline, "
        "concurrency, retry_tiers, download, soak, soak-key",
    )
    parser.add_argument("--repeats", type=int, help=f"rounds per benchmark (>= {MIN_REPEATS})")
    parser.add_argument("--soak-records", type=int, help="records per soak (1,000,000)")
    parser.add_argument(
        "--output",
        type=Path,
        help="the Markdown results file (docs/benchmarks.md; its JSON twin sits next to it)",
    )
    parser.add_argument(
        "--readme", default="README.md", help="README whose benchmark block is rewritten, or 'none'"
    )
    parser.add_argument("--print-only", action="store_true", help="write no results file")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be at least {MIN_REPEATS}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run what was asked, print every table, write the results when asked to."""
    args = parse_args(argv)
    scale = QUICK if args.quick else FULL
    if args.repeats is not None:
        scale = dataclasses.replace(scale, repeats=args.repeats)
    if args.soak_records is not None:
        scale = dataclasses.replace(scale, soak_records=args.soak_records)
    with asyncio.Runner() as runner:
        available = benchmarks(scale, runner)
        soaks = ["soak", "soak-key"]
        chosen = args.only.split(",") if args.only else [n for n in available if n not in soaks]
        if args.soak:
            chosen += [name for name in soaks if name not in chosen]
        unknown = sorted(set(chosen) - set(available))
        if unknown:
            raise SystemExit(f"unknown benchmarks {unknown}; known: {sorted(available)}")
        machine = describe_machine(ROOT)
        print(Results(machine, {}).machine_line(), flush=True)
        sections: list[Section] = []
        for name in chosen:
            for section in available[name]():
                section = dataclasses.replace(section, measured=machine["date"])
                print_section(section)
                sections.append(section)
    output = args.output or (None if args.quick else ROOT / "docs" / "benchmarks.md")
    if output is not None and not args.print_only:
        write_results(output, machine, sections, readme=args.readme)


def print_section(section: Section) -> None:
    """The section's table and verdicts on the console."""
    print(f"\n## {section.title}\n{console_table(section.columns, section.rows)}")
    for check in section.checks:
        print(f"target {check.target}: ours {check.ours} -> {check.verdict.strip('*')}")
    print(end="", flush=True)


def write_results(
    output: Path, machine: dict[str, str], sections: list[Section], *, readme: str
) -> None:
    """Merge into the stored results, write the Markdown and its JSON, update the README."""
    store = output.with_suffix(".json")
    results = Results.load(store)
    results.merge(machine, sections)
    results.save(store, SECTION_ORDER)
    output.write_text(results.markdown(SECTION_ORDER))
    print(f"\nwrote {output} and {store}")
    if readme != "none":
        readme_path = Path(readme) if Path(readme).is_absolute() else ROOT / readme
        link = _relative(output, readme_path.parent)
        update_readme(readme_path, readme_block(results, link))
        print(f"updated the benchmark table in {readme_path}")


def readme_block(results: Results, link: str) -> str:
    """What the README shows: the machine line, the targets table, a link to the details."""
    return "\n".join(
        [
            results.machine_line(),
            "",
            results.summary_markdown(SECTION_ORDER),
            "",
            f"Every table, with the peers' figures and how each was measured: [{link}]({link}).",
        ]
    )


def _relative(path: Path, start: Path) -> str:
    try:
        return str(path.resolve().relative_to(start.resolve()))
    except ValueError:
        return str(path.resolve())
