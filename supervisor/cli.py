"""The `kafka-pipeline` command (also `python -m supervisor`).

    kafka-pipeline run --config FILE.toml     run the supervised pipeline until signalled
    kafka-pipeline check-config FILE.toml     validate, print the effective configuration
    kafka-pipeline demo [--duration SECONDS] [--keep]
                                              the pipeline on an embedded broker, live

Exit codes: 0 after a graceful stop, 1 after an escalation (one line on stderr naming
the actor, the category and the cause), 2 for a usage or configuration error (one line
on stderr, no traceback), 128 + N when a second signal N stopped the process at once
(see `supervisor.pipeline.process`). A broker that cannot be reached is not a configuration
error: it is TRANSIENT, so the consumer is restarted with backoff until the restart
intensity is spent, then the process escalates (exit 1).

check-config does what `run` does before it starts anything (one function for both):
it loads and validates the file, builds the whole tree (importing the handler, checking
the Kafka settings together) and checks the machine (the log file can be appended to,
the health address can be bound). A file it accepts does not fail `run` with a
configuration error at startup, on the same machine at the same moment.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from core.errors import ConfigurationError
from core.logging import error_text
from supervisor.pipeline.allocator import pin_mmap_threshold
from supervisor.pipeline.config import load_config, register_secrets, render_config
from supervisor.pipeline.process import EXIT_OK, EXIT_USAGE, PROGRAM, serve
from supervisor.pipeline.retry_topics import check_retry_topics_exist
from supervisor.pipeline.retry_topics import describe as describe_retry_topics

if TYPE_CHECKING:
    from supervisor.pipeline.wiring import Pipeline

__all__ = ["main"]

EXIT_INTERRUPTED = 128 + signal.SIGINT


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: the command line), run the command, return the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.command(args)
    except ConfigurationError as exc:
        sys.stderr.write(f"{PROGRAM}: configuration error: {' '.join(error_text(exc).split())}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return EXIT_INTERRUPTED
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="A supervised, at-least-once Kafka / Azure Event Hubs worker.",
    )
    parser.add_argument("--version", action="version", version=metadata.version(PROGRAM))
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the pipeline until SIGTERM or SIGINT")
    run.add_argument("--config", required=True, type=Path, metavar="FILE.toml")
    run.set_defaults(command=_run)

    check = commands.add_parser("check-config", help="validate a configuration and print it")
    check.add_argument("config", type=Path, metavar="FILE.toml")
    check.set_defaults(command=_check_config)

    demo = commands.add_parser(
        "demo", help="the pipeline on an embedded broker, with a live status"
    )
    demo.add_argument(
        "--duration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop by itself after this long (default: run until Ctrl-C)",
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory with the logs (default: removed at the end)",
    )
    demo.set_defaults(command=_demo)
    return parser


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return seconds


def _run(args: argparse.Namespace) -> int:
    path: Path = args.config
    pin_mmap_threshold()

    async def prepare_and_serve() -> int:
        pipeline = _prepared(path)
        await check_retry_topics_exist(pipeline.consumer_settings)
        return await serve(pipeline)

    return anyio.run(prepare_and_serve, backend="asyncio")


def _check_config(args: argparse.Namespace) -> int:
    path: Path = args.config

    async def prepare() -> Pipeline:
        pipeline = _prepared(path)
        await check_retry_topics_exist(pipeline.consumer_settings)
        return pipeline

    pipeline = anyio.run(prepare, backend="asyncio")
    children = ", ".join(spec.name for spec in pipeline.root.children)
    sys.stdout.write(render_config(pipeline.config))
    for line in describe_retry_topics(pipeline.consumer_settings):
        sys.stdout.write(line + "\n")
    sys.stdout.write(f"# valid; supervision tree ({pipeline.root.name}): {children}\n")
    return EXIT_OK


def _prepared(path: Path) -> Pipeline:
    """Everything `run` does before it starts anything, and all `check-config` does:
    load and validate the file, build the tree (importing the handler), check the
    machine (log file, health address). Any error on the way is a configuration error,
    whatever its type: nothing has started, and a restart cannot fix it."""
    from supervisor.pipeline.wiring import Pipeline  # a bad file is reported without it

    try:
        config = load_config(path)
        register_secrets(config)
        pipeline = Pipeline(config, base_dir=path.resolve().parent)
        pipeline.check_environment()
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"{type(exc).__name__}: {error_text(exc)}") from None
    return pipeline


def _demo(args: argparse.Namespace) -> int:
    from supervisor.demo.runner import run_demo  # the demo's imports stay out of `run`

    duration: float | None = args.duration
    keep: bool = args.keep
    return anyio.run(partial(run_demo, duration, keep=keep), backend="asyncio")
