"""Supervisor crash-to-running latency (the `supervisor` part of scripts/bench/run).

Prints the tables and writes nothing. Run: .venv/bin/python scripts/bench/bench_supervisor.py
[--quick] [--repeats N] (needs the `bench` extra: scripts/bench/run installs it).
"""

import sys

from scripts.bench.cli import main

if __name__ == "__main__":
    main(["--only", "supervisor", "--print-only", *sys.argv[1:]])
