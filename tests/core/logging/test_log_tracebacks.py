"""format_exception: the standard library's traceback text without carets, and groups."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from log_capture import CapturedLog

from core.errors import TransientError
from core.logging import ConsoleFormatter, JSONFormatter
from core.logging.tracebacks import format_exception

_CARETS = re.compile(r"^\s*[~^]+\s*$")


def stdlib_text_without_carets(exc: BaseException) -> str:
    """What traceback.format_exception writes for `exc`, minus the caret lines."""
    text = "".join(traceback.format_exception(exc)).rstrip("\n")
    return "\n".join(line for line in text.split("\n") if not _CARETS.match(line))


def caught(raise_it: Callable[[], object]) -> BaseException:
    """The exception `raise_it()` raises."""
    try:
        raise_it()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing was raised")


def rendered(exc: BaseException) -> str:
    """format_exception of a caught exception with its own traceback."""
    return format_exception(exc, exc.__traceback__)


@dataclass(frozen=True)
class Link:
    """One exception of a chain: its type, text, notes, extra frames, and how it was raised."""

    kind: type[Exception]
    message: str
    notes: tuple[str, ...]
    depth: int
    joint: str
    """How it was raised while the previous link was handled: cause, context, suppressed."""


def raise_link(link: Link, depth: int) -> None:
    """Raise `link`'s exception `depth` frames further down."""
    if depth:
        raise_link(link, depth - 1)
        return
    error = link.kind(link.message)
    for note in link.notes:
        error.add_note(note)
    raise error


def raise_chain(links: list[Link]) -> None:
    """Raise the last link while handling the ones before it, joined as each link says."""
    *older, newest = links
    if not older:
        raise_link(newest, newest.depth)
        return
    try:
        raise_chain(older)
    except Exception as previous:
        if newest.joint == "cause":
            try:
                raise_link(newest, newest.depth)
            except Exception as error:
                raise error from previous
        if newest.joint == "suppressed":
            try:
                raise_link(newest, newest.depth)
            except Exception as error:
                raise error from None
        raise_link(newest, newest.depth)


_TEXT = st.text(st.characters(blacklist_characters="^~"), max_size=20)
"""Any text but caret characters, which the oracle drops from the stdlib's lines."""
links = st.builds(
    Link,
    kind=st.sampled_from([ValueError, KeyError, RuntimeError, TransientError]),
    message=_TEXT,
    notes=st.lists(_TEXT, max_size=2).map(tuple),
    depth=st.integers(0, 3),
    joint=st.sampled_from(["cause", "context", "suppressed"]),
)


@settings(max_examples=60, deadline=None)
@given(chain=st.lists(links, min_size=1, max_size=4))
def test_chains_read_like_the_standard_librarys_without_carets(chain: list[Link]) -> None:
    """Any chain of causes, contexts and suppressed contexts, with notes, reads as the stdlib's."""
    exc = caught(lambda: raise_chain(chain))
    assert rendered(exc) == stdlib_text_without_carets(exc)


def recurse(times: int) -> None:
    """Call itself `times` times, then fail."""
    if times:
        recurse(times - 1)
    raise RuntimeError("bottom")


def test_recursion_is_collapsed_like_the_standard_librarys() -> None:
    """A line repeated by recursion appears three times, then as a repeat count."""
    exc = caught(lambda: recurse(40))
    text = rendered(exc)
    assert "[Previous line repeated" in text
    assert text == stdlib_text_without_carets(exc)


def test_an_exception_without_traceback_is_its_line_alone() -> None:
    """An exception never raised renders as `module.Name: message`, as the stdlib does."""
    exc = TransientError("not raised")
    assert rendered(exc) == stdlib_text_without_carets(exc)


def test_a_failing_str_is_named_not_raised() -> None:
    """An exception whose str() fails still renders, with the stdlib's placeholder."""

    class BrokenStrError(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    exc = caught(lambda: (_ for _ in ()).throw(BrokenStrError()))
    assert rendered(exc) == stdlib_text_without_carets(exc)
    assert "<exception str() failed>" in rendered(exc)


def test_a_syntax_error_keeps_its_caret() -> None:
    """A SyntaxError's line is the stdlib's: the bad source and the caret under it."""
    exc = caught(lambda: compile("x = (1,", "<config>", "exec"))
    stdlib_line = "".join(traceback.format_exception_only(exc)).rstrip("\n")
    assert rendered(exc).endswith(f"\n{stdlib_line}")
    assert "\n    x = (1,\n        ^\n" in rendered(exc)


def test_a_cycle_of_contexts_ends() -> None:
    """Exceptions that are each other's context are each rendered once."""
    first, second = ValueError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first
    text = format_exception(first, None)
    assert text.count("ValueError: first") == 1
    assert text.count("ValueError: second") == 1


def fail_in_group(*errors: Exception) -> None:
    """Raise an ExceptionGroup of `errors`, each raised (so it has a traceback) first."""
    raised = [caught(lambda error=error: (_ for _ in ()).throw(error)) for error in errors]
    raise ExceptionGroup("several failed", [e for e in raised if isinstance(e, Exception)])


def test_an_exception_group_lists_each_member_with_its_traceback() -> None:
    """A group renders its own line, then each member's traceback and line under a header."""
    exc = caught(lambda: fail_in_group(ValueError("one"), TransientError("two")))
    text = rendered(exc)
    assert "ExceptionGroup: several failed (2 sub-exceptions)" in text
    assert "[member 1 of 2]\n    Traceback (most recent call last):" in text
    assert "\n    ValueError: one" in text
    assert "[member 2 of 2]" in text
    assert "\n    core.errors.exceptions.TransientError: two" in text


def test_nested_groups_indent_once_more_per_level() -> None:
    """A group inside a group has its members indented one level deeper."""
    inner = caught(lambda: fail_in_group(KeyError("deep")))
    assert isinstance(inner, Exception)
    text = format_exception(ExceptionGroup("outer", [inner]), None)
    assert "\n    ExceptionGroup: several failed (1 sub-exception)" in text
    assert "\n        KeyError: 'deep'" in text


def test_a_wide_group_shows_its_first_fifteen_members() -> None:
    """A group of twenty shows fifteen members and says how many more there are."""
    group = ExceptionGroup("many", [ValueError(str(n)) for n in range(20)])
    text = format_exception(group, None)
    assert "[member 15 of 20]" in text
    assert "[member 16 of 20]" not in text
    assert text.endswith("... and 5 more exceptions")


def test_a_member_seen_before_is_not_rendered_twice() -> None:
    """The same exception twice in a group is rendered once, then referred to."""
    repeated = ValueError("twice")
    text = format_exception(ExceptionGroup("dup", [repeated, repeated]), None)
    assert text.count("ValueError: twice") == 1
    assert "[member 2 of 2]\n    (shown above)" in text


def test_json_formatter_writes_the_chain_without_carets_as_valid_json() -> None:
    """JSONFormatter's `exception` is this module's text, in one valid JSON line."""
    log = CapturedLog(JSONFormatter())
    try:
        raise_chain(
            [
                Link(KeyError, "k", (), 1, "context"),
                Link(TransientError, 'broker "b1" down\nretrying', ("note",), 2, "cause"),
            ]
        )
    except Exception as exc:
        log.logger.exception("failed")
        expected = rendered(exc)
    assert len(log.lines()) == 1
    assert orjson.loads(log.lines()[0])["exception"] == expected
    assert "The above exception was the direct cause" in expected


def test_console_formatter_puts_the_same_text_under_the_line() -> None:
    """ConsoleFormatter follows the record line with the same caret-free traceback."""
    log = CapturedLog(ConsoleFormatter())
    exc = caught(lambda: recurse(2))
    log.logger.error("failed", exc_info=exc)
    assert log.text.rstrip("\n").split("\n", 1)[1] == rendered(exc)


def test_exc_info_outside_an_exception_is_written_as_the_stdlib_does() -> None:
    """exc_info=(None, None, None) gives the stdlib's 'NoneType: None', not an error."""
    log = CapturedLog(JSONFormatter())
    log.logger.error("nothing", exc_info=(None, None, None))
    expected = logging.Formatter().formatException((None, None, None))
    assert log.last()["exception"] == expected
