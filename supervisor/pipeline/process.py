"""Running the pipeline as a process: signals, the graceful-stop deadline, the exit code.

    first SIGTERM, SIGINT     graceful stop: the children stop in reverse start order (the
    or SIGHUP                 consumer finishes the record in hand, commits and leaves
                              the group; the log shipper delivers what is queued)
    second signal             stop at once: exit 128 + the signal's number; records not
                              yet committed are delivered again (at-least-once)
    SIGUSR1, SIGUSR2          ignored, with one line on stderr and a log record
    graceful stop overruns    after supervisor.graceful_stop_s, stop at once: exit 1
    escalation                exit 1, with one line on stderr naming actor, category, cause

"At once" is `os._exit`: the children's graceful stops run shielded from cancellation
(that is what makes them graceful), so nothing short of leaving the process ends them.

SIGHUP stops gracefully like SIGTERM: it is what a closing terminal or session sends,
and its default action would end the process without a commit. There is no reload on
SIGHUP: the configuration is read once, and a restart applies a new one. SIGUSR1 and
SIGUSR2 have no meaning here, and their default action would also end the process
without a commit; a stray `kill -USR1` is therefore noted and ignored.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Final, Protocol

import anyio

from core.errors import PipelineError
from core.logging.error_text import error_text
from core.types import ErrorCategory
from supervisor import EscalationError

if TYPE_CHECKING:
    from supervisor.pipeline.wiring import Pipeline

__all__ = [
    "EXIT_ESCALATED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROGRAM",
    "Console",
    "escalation_line",
    "serve",
]

EXIT_OK: Final = 0
EXIT_ESCALATED: Final = 1
EXIT_USAGE: Final = 2
PROGRAM: Final = "kafka-pipeline"
MAX_CAUSE_BYTES: Final = 2048
"""An escalation line quotes at most this much of its cause's text."""

_log = logging.getLogger("supervisor.process")


class Console(Protocol):
    """Where the process's one-line messages go (stderr, or the demo's terminal)."""

    def write(self, text: str, /) -> object:
        """Write `text`."""
        ...

    def flush(self) -> object:
        """Make what was written visible."""
        ...


def escalation_line(error: EscalationError) -> str:
    """`kafka-pipeline: actor 'X' escalated (category): cause`, on one line.

    A cause wrapped in exception groups of one member (what a task group raises for
    the one failure inside it) is shown unwrapped: the line names the real cause. The
    cause's text is rendered by core.logging.error_text, cut at `MAX_CAUSE_BYTES`.
    """
    cause = _innermost(error.__cause__)
    if cause is None:
        what = error.reason
    else:
        detail = " ".join(error_text(cause, max_bytes=MAX_CAUSE_BYTES).split())
        if isinstance(cause, PipelineError) and detail:
            text = detail
        else:
            text = f"{type(cause).__name__}: {detail}" if detail else type(cause).__name__
        permanent = error.category is ErrorCategory.PERMANENT
        what = text if permanent else f"{error.reason}; last: {text}"
    line = f"{PROGRAM}: actor {error.child!r} escalated ({error.category.value}): {what}"
    return " ".join(line.split())


def _innermost(error: BaseException | None) -> BaseException | None:
    """`error` with its single-member exception groups peeled off, however deeply nested."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def serve(pipeline: Pipeline, *, stderr: Console | None = None) -> int:
    """Run `pipeline` until a signal stops it or it escalates; the process's exit code.

    Raises ConfigurationError, starting nothing, when the environment is unfit (see
    `Pipeline.check_environment`): the CLI exits 2 on it.
    """
    err = stderr if stderr is not None else sys.stderr
    pipeline.check_environment()  # before the task group, which would wrap the error
    deadline = pipeline.config.supervisor.graceful_stop_s
    async with anyio.create_task_group() as group:
        group.start_soon(_follow_signals, pipeline, deadline, err)
        try:
            await pipeline.run()
        except EscalationError as exc:
            _say(err, escalation_line(exc))
            return EXIT_ESCALATED
        except ExceptionGroup as exc:
            errors = "; ".join(
                f"{type(e).__name__}: {error_text(e, max_bytes=MAX_CAUSE_BYTES)}"
                for e in exc.exceptions
            )
            _say(err, f"{PROGRAM}: actors failed while stopping: {errors}")
            return EXIT_ESCALATED
        finally:
            group.cancel_scope.cancel()
    return EXIT_OK


STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
IGNORED_SIGNALS: Final = (signal.SIGUSR1, signal.SIGUSR2)


async def _follow_signals(pipeline: Pipeline, deadline: float, err: Console) -> None:
    with anyio.open_signal_receiver(*STOP_SIGNALS, *IGNORED_SIGNALS) as signals:
        async for first in signals:
            if _ignored(first, err):
                continue
            name = signal.Signals(first).name
            _say(err, f"{PROGRAM}: {name}: stopping gracefully")
            _log.info(
                "%s: graceful stop within %gs",
                name,
                deadline,
                extra={"event": "stop_requested", "signal": name},
            )
            pipeline.stop()
            break
        with anyio.move_on_after(deadline):
            async for second in signals:
                if _ignored(second, err):
                    continue
                name = signal.Signals(second).name
                _exit_now(err, f"{name} again: stopping at once", 128 + second)
        _exit_now(err, f"graceful stop took longer than {deadline:g}s: stopping at once", 1)


def _ignored(number: int, err: Console) -> bool:
    """True (after saying so) for a signal that has no meaning here."""
    if number not in IGNORED_SIGNALS:
        return False
    name = signal.Signals(number).name
    _say(err, f"{PROGRAM}: {name}: ignored (SIGTERM, SIGINT or SIGHUP stop the process)")
    _log.warning("%s ignored", name, extra={"event": "signal_ignored", "signal": name})
    return True


def _exit_now(err: Console, reason: str, code: int) -> None:
    _say(err, f"{PROGRAM}: {reason}; records not yet committed will be delivered again")
    os._exit(code)


def _say(err: Console, line: str) -> None:
    err.write(line + "\n")
    err.flush()
