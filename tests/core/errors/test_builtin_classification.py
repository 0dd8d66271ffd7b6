"""classify_exception on standard-library exceptions and on chains of explicit causes."""

from __future__ import annotations

import errno
import os
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import AuthError, TransientError, classify_exception
from core.errors.classification import _MAX_CAUSE_DEPTH
from core.types import ErrorCategory

NETWORK_ERRNOS_WITHOUT_SUBCLASS = [
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.ENETRESET,
    errno.EHOSTDOWN,
    errno.EADDRNOTAVAIL,
]


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _chain(root: BaseException, wrappers: int) -> BaseException:
    """`root` wrapped `wrappers` times in RuntimeError via `raise ... from ...`."""
    exc = root
    for level in range(wrappers):
        try:
            raise RuntimeError(f"wrapper {level}") from exc
        except RuntimeError as wrapper:
            exc = wrapper
    return exc


def _refused_connection() -> ConnectionRefusedError:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError) as info:
        socket.create_connection(("127.0.0.1", port), timeout=2)
    return info.value


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError("read timed out"),
        ConnectionError("lost"),
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        ConnectionResetError(errno.ECONNRESET, "reset by peer"),
        ConnectionAbortedError(errno.ECONNABORTED, "aborted"),
        BrokenPipeError(errno.EPIPE, "broken pipe"),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    ],
    ids=repr,
)
def test_timeouts_connection_errors_and_dns_failures_are_transient(exc: BaseException) -> None:
    """Builtin timeouts, every ConnectionError subclass and DNS failures are TRANSIENT."""
    assert classify_exception(exc) is ErrorCategory.TRANSIENT


def test_a_real_refused_connection_is_transient() -> None:
    """The error a refused TCP connect really raises is TRANSIENT."""
    assert classify_exception(_refused_connection()) is ErrorCategory.TRANSIENT


@pytest.mark.parametrize("code", NETWORK_ERRNOS_WITHOUT_SUBCLASS, ids=errno.errorcode.get)
def test_plain_oserror_with_a_network_errno_is_transient(code: int) -> None:
    """A plain OSError (no ConnectionError subclass) carrying a network errno is TRANSIENT."""
    exc = _os_error(code)
    assert type(exc) is OSError
    assert classify_exception(exc) is ErrorCategory.TRANSIENT


@pytest.mark.parametrize(
    "exc",
    [
        _os_error(errno.ENOENT),
        _os_error(errno.EACCES),
        _os_error(errno.ENOSPC),
        OSError("no errno at all"),
    ],
    ids=repr,
)
def test_oserror_without_a_network_errno_is_unknown(exc: OSError) -> None:
    """File-system and other non-network OSErrors are not known to be retryable: UNKNOWN."""
    assert classify_exception(exc) is ErrorCategory.UNKNOWN


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("invalid literal"),
        TypeError("unsupported operand"),
        KeyError("missing"),
        IndexError("out of range"),
        AttributeError("no attribute"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    ],
    ids=repr,
)
def test_bad_input_errors_are_permanent(exc: BaseException) -> None:
    """Errors that say the input itself is wrong are PERMANENT: a retry sees the same input."""
    assert classify_exception(exc) is ErrorCategory.PERMANENT


@pytest.mark.parametrize("exc", [RuntimeError("boom"), Exception("boom"), ArithmeticError()])
def test_unrecognised_exceptions_are_unknown(exc: BaseException) -> None:
    """An exception with no known meaning is UNKNOWN."""
    assert classify_exception(exc) is ErrorCategory.UNKNOWN


@given(
    root=st.sampled_from(
        [ConnectionResetError("reset"), ValueError("bad"), TransientError("busy")]
    ),
    wrappers=st.integers(1, _MAX_CAUSE_DEPTH),
)
def test_unknown_wrappers_take_the_category_of_their_cause(
    root: BaseException, wrappers: int
) -> None:
    """Up to the depth limit, `raise Unknown(...) from cause` is classified by the cause."""
    assert classify_exception(_chain(root, wrappers)) is classify_exception(root)


@given(wrappers=st.integers(_MAX_CAUSE_DEPTH + 1, _MAX_CAUSE_DEPTH + 5))
def test_cause_chain_beyond_the_depth_limit_is_unknown(wrappers: int) -> None:
    """Causes deeper than the limit are not followed, so a very long chain stays UNKNOWN."""
    assert classify_exception(_chain(ValueError("bad"), wrappers)) is ErrorCategory.UNKNOWN


def test_a_cycle_of_causes_terminates_as_unknown() -> None:
    """Two UNKNOWN errors that are each other's cause do not loop forever."""
    first, second = RuntimeError("first"), RuntimeError("second")
    first.__cause__, second.__cause__ = second, first
    assert classify_exception(first) is ErrorCategory.UNKNOWN


@pytest.mark.parametrize(
    ("outer", "cause", "category"),
    [
        (ValueError("bad record"), ConnectionResetError("reset"), ErrorCategory.PERMANENT),
        (TransientError("busy"), ValueError("bad record"), ErrorCategory.TRANSIENT),
        (AuthError("rejected"), TimeoutError("slow"), ErrorCategory.AUTH),
    ],
    ids=repr,
)
def test_a_known_category_is_not_overridden_by_its_cause(
    outer: BaseException, cause: BaseException, category: ErrorCategory
) -> None:
    """Only UNKNOWN wrappers defer to their cause; a known category stands."""
    outer.__cause__ = cause
    assert classify_exception(outer) is category


def test_implicit_context_is_not_followed() -> None:
    """An error raised while handling another (no `from`) is judged on its own, not its context."""
    exc = RuntimeError("cleanup failed")
    exc.__context__ = ConnectionResetError("reset")
    assert classify_exception(exc) is ErrorCategory.UNKNOWN
