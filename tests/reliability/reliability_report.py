"""The figures the reliability suite measured, written as docs/RELIABILITY.md.

Each scenario test records what it measured (kills survived, records lost, duplicates,
restarts, durations) under its scenario's name. At the end of the session the report is
always written to the session's temporary directory (pytest's basetemp), and copied to
docs/RELIABILITY.md only when `KAFKA_PIPELINE_WRITE_RELIABILITY=1`, so a CI run never
changes the work tree. The soak benchmark (scripts/soak.py) owns its own section of that
file, between the SOAK_BEGIN and SOAK_END markers, which the suite keeps as it was.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

__all__ = ["SOAK_BEGIN", "SOAK_END", "WRITE_ENV", "ReliabilityReport", "soak_section"]

WRITE_ENV: Final = "KAFKA_PIPELINE_WRITE_RELIABILITY"
SOAK_BEGIN: Final = "<!-- soak:begin -->"
SOAK_END: Final = "<!-- soak:end -->"
_NO_SOAK: Final = "Not run yet: `.venv/bin/python scripts/soak.py --write`."

_HEADER = """# Reliability figures

Measured by the reliability suite (`tests/reliability/`, one test per scenario
below) against the real process (`python -m supervisor run`) and a real broker
(Apache Kafka 4.1, KRaft, one node), and by the soak benchmark (`scripts/soak.py`, not
part of CI).

Regenerate the suite's section (the whole suite must run, so that every scenario
records its figures):

    KAFKA_PIPELINE_WRITE_RELIABILITY=1 .venv/bin/python -m pytest tests/reliability

Without that variable the report goes only to pytest's temporary directory
(`<basetemp>/RELIABILITY.md`), so CI never changes the work tree. Regenerate the soak
section with `.venv/bin/python scripts/soak.py --write` (about a minute).

What the scenarios assert (each test module's docstring has the details):

1. `kill -9` of the whole process, six times at random points while it consumes:
   every record handled at least once; within one life no record reaches the handler
   twice (dedup); a record handled again in a later life lies at or after the offset
   the group had committed when the earlier life was killed. Dedup memory lives in
   the process, so across kills duplicates are bounded by the uncommitted tail.
2. Broker down 10 s, stopped or killed with its log directory kept: nothing produced
   before, during (retried) or after is lost and the process needs no help; after a
   broker that lost its disk came back, everything produced afterwards is handled.
3. Crash storms per error category: exit 1 and one line after `max_restarts`
   restarts (TRANSIENT, UNKNOWN), at once (PERMANENT); open circuits pause without
   restarts; AUTH gets a token refresh before the restart.
4. Poison records dead-lettered with their headers while good records flow; a poison
   storm stops the process, having committed only records it handled or
   dead-lettered.
5. SIGTERM under load: exit 0 within the deadline, each partition committed exactly up
   to its first unhandled record, every log line shipped; the next life handles the
   rest, nothing lost.
6. Two group members, `kill -9` or SIGTERM of one: the other takes over (after the
   session timeout, or at once after a LeaveGroup), nothing lost.
7. Secrets: no byte written anywhere contains them.
8. Bad environment: exit 2, one line, nothing written to any topic.

Scenarios 1, 4 (the storm), 5 and 6 run twice, one record at a time and with
`ordering = "key"` and 16 in flight, on workloads whose 50 to 100 keys repeat; each
checks that within a life every key's records were handled in offset order
(`out_of_key_order_within_a_life`). With keys running concurrently, records of other
keys may finish past one not yet started when a process stops: the commit stops at
that record and the next life handles them again (`handled_again_next_life`).

Scenarios 2 (memory storage) and 8 record their figures before they assert, so the
table shows what the process did even where it falls short (`records_lost` above 0,
an exit code other than 2); the other scenarios record theirs once they passed.
"""


def soak_section(existing: str | None) -> str:
    """The soak section of an existing report (markers included), or a placeholder."""
    if existing is not None and SOAK_BEGIN in existing and SOAK_END in existing:
        start = existing.index(SOAK_BEGIN)
        end = existing.index(SOAK_END) + len(SOAK_END)
        return existing[start:end]
    return f"{SOAK_BEGIN}\n{_NO_SOAK}\n{SOAK_END}"


@dataclass
class ReliabilityReport:
    """Figures by scenario, in the order the scenarios recorded them."""

    scenarios: dict[str, dict[str, object]] = field(default_factory=dict)

    def record(self, scenario: str, **figures: object) -> None:
        """Add `figures` to `scenario` (a later value for the same name replaces it)."""
        self.scenarios.setdefault(scenario, {}).update(figures)

    def render(self, *, soak: str) -> str:
        """The whole Markdown document, with `soak` (the soak section) kept as given."""
        lines = [_HEADER, "## Suite", ""]
        lines.append(
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {platform.system()} {platform.machine()}."
        )
        lines.append("")
        lines.append("| scenario | figure | value |")
        lines.append("|---|---|---|")
        for scenario, figures in self.scenarios.items():
            for index, (name, value) in enumerate(figures.items()):
                lines.append(f"| {scenario if index == 0 else ''} | {name} | {_show(value)} |")
        lines += ["", "## Soak", "", soak, ""]
        return "\n".join(lines)

    def write(self, scratch: Path, docs: Path) -> Path:
        """Write the report into `scratch`, and over `docs` when WRITE_ENV is 1; the path
        written last."""
        existing = docs.read_text() if docs.exists() else None
        text = self.render(soak=soak_section(existing))
        scratch.write_text(text)
        if os.environ.get(WRITE_ENV) == "1":
            docs.parent.mkdir(parents=True, exist_ok=True)
            docs.write_text(text)
            return docs
        return scratch


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")
