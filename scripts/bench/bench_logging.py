"""JSON log records through stdlib logging next to their peers (`logging` of scripts/bench/run).

Prints the tables and writes nothing. Run: .venv/bin/python scripts/bench/bench_logging.py
[--quick] [--repeats N] (needs the `bench` extra: scripts/bench/run installs it).
"""

import sys

from scripts.bench.cli import main

if __name__ == "__main__":
    main(["--only", "logging", "--print-only", *sys.argv[1:]])
