"""EscalationError: a supervisor gave up, and says on one line who, why and what.

It is a `PipelineError` whose category is the failed child's, so a parent
supervisor classifies a nested supervisor's escalation with the same table as
any other exit: PERMANENT escalates further, anything else (restart intensity
exhausted on transient, unknown or auth failures) is a failure of that child
that the parent restarts within its own intensity, as OTP restarts a child
supervisor that exited. A child that kept returning normally escalates as
UNKNOWN (it is a loop the supervisor cannot explain).
"""

from __future__ import annotations

from core.errors import PipelineError
from core.logging.error_text import error_text
from core.types import ErrorCategory

__all__ = ["EscalationError"]


class EscalationError(PipelineError):
    """A supervisor stopped all its children and gave up because of `child`.

    `__cause__` is the child's exception (None if the child kept returning).
    Errors raised by siblings while they were being stopped are attached as notes.
    """

    def __init__(
        self,
        *,
        supervisor: str,
        child: str,
        category: ErrorCategory | None,
        reason: str,
        cause: BaseException | None,
    ) -> None:
        what = "returned" if category is None else f"failed {category.name}"
        message = f"supervisor {supervisor!r}: child {child!r} {what} ({reason})"
        if cause is not None:
            message += f": {type(cause).__name__}: {error_text(cause, max_bytes=4096)}"
        super().__init__(
            " ".join(message.split()),
            category=category or ErrorCategory.UNKNOWN,
        )
        self.supervisor = supervisor
        self.child = child
        self.reason = reason
        self.__cause__ = cause
