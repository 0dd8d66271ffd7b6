"""`python -m scripts.bench`: what scripts/bench/run runs (see scripts.bench.cli)."""

from scripts.bench.cli import main

main()
