"""Cost of one log record through stdlib logging: our JSONFormatter vs a stdlib text line.

Each variant logs the same call, `logger.info("record processed", extra=<5 fields>)`, to
its own handler writing into an io.StringIO (emptied between repeats), so the figures
include the whole stdlib path (record creation, handler lock, write), not just format().
"core JSONFormatter" is what setup_logging installs; "+ ContextFilter" adds the snapshot a
handler that formats later (queue, log shipper) needs.
Variants run interleaved within each repeat so that machine noise hits all alike, and the
clock is this process's CPU time, so other processes on a shared machine do not count.
python-json-logger (with orjson) is measured too when it is installed (the `bench` extra).

Usage: .venv/bin/python scripts/bench/bench_logging.py [--records N] [--repeats R]
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import time
from collections.abc import Callable

from core.logging import ContextFilter, JSONFormatter, KafkaLogContext

EXTRA = {
    "topic": "orders",
    "partition": 3,
    "offset": 1_234_567,
    "consumer_group": "billing",
    "duration_ms": 1.25,
}
STDLIB_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def make_logger(name: str, formatter: logging.Formatter, *, context: bool) -> logging.Logger:
    """Return a logger writing through `formatter` into a fresh StringIO, not propagating."""
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    if context:
        handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"bench.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def empty(logger: logging.Logger) -> None:
    """Empty the logger's StringIO so that every repeat writes into the same amount."""
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and isinstance(handler.stream, io.StringIO):
            handler.stream.seek(0)
            handler.stream.truncate()


def log_loop(logger: logging.Logger, records: int) -> Callable[[], None]:
    """Return a function logging `records` records with the 5 extra fields."""

    def run() -> None:
        info = logger.info
        for _ in range(records):
            info("record processed", extra=EXTRA)

    return run


def kafka_context_loop(records: int) -> Callable[[], None]:
    """Return a function entering and leaving one KafkaLogContext per record."""

    def run() -> None:
        for offset in range(records):
            with KafkaLogContext("orders", 3, offset, "billing"):
                pass

    return run


def peer_formatter() -> logging.Formatter | None:
    """Return python-json-logger's orjson formatter when it is installed, else None."""
    try:
        from pythonjsonlogger.orjson import OrjsonFormatter
    except ImportError:
        return None
    formatter: logging.Formatter = OrjsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    return formatter


def main() -> None:
    """Measure every variant and print ns/record (min and median) and the ratio to stdlib."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.repeats < 7:
        parser.error("--repeats must be at least 7")

    loggers = {
        "stdlib plain text": make_logger("stdlib", logging.Formatter(STDLIB_FORMAT), context=False),
        "core JSONFormatter": make_logger("core", JSONFormatter(), context=False),
        "core JSON + ContextFilter": make_logger("filtered", JSONFormatter(), context=True),
    }
    peer = peer_formatter()
    if peer is not None:
        loggers["python-json-logger+orjson"] = make_logger("peer", peer, context=False)
    loops = {name: log_loop(logger, args.records) for name, logger in loggers.items()}
    loops["KafkaLogContext enter+exit"] = kafka_context_loop(args.records)

    samples: dict[str, list[float]] = {name: [] for name in loops}
    for loop in loops.values():
        loop()  # warm-up: caches, first-second timestamp, allocator
    for _ in range(args.repeats):
        for name, loop in loops.items():
            for logger in loggers.values():
                empty(logger)
            started = time.process_time_ns()
            loop()
            samples[name].append((time.process_time_ns() - started) / args.records)

    stdlib_min = min(samples["stdlib plain text"])
    stdlib_median = statistics.median(samples["stdlib plain text"])
    print(
        f"{args.records} records x {args.repeats} repeats, 5 extra fields, into io.StringIO,"
        " CPU ns per record"
    )
    print(f"{'variant':<28} {'min ns':>9} {'median ns':>10} {'min/stdlib':>11} {'med/stdlib':>11}")
    for name, values in samples.items():
        low, middle = min(values), statistics.median(values)
        print(
            f"{name:<28} {low:>9.0f} {middle:>10.0f} "
            f"{low / stdlib_min:>11.3f} {middle / stdlib_median:>11.3f}"
        )


if __name__ == "__main__":
    main()
