"""Exception text for log records, cheap enough to log every crash.

Python 3.11's `traceback` module marks each frame's failing expression with carets,
found by re-parsing that frame's source line (an `ast.parse` per frame) and stats every
source file again: 100-300 µs per logged exception, more than a supervisor restart
itself. This renders what an operator reads the way the standard library lays it out,
without the carets:

* the chain of causes and contexts, oldest first, joined by the standard library's
  "The above exception was the direct cause..." / "During handling..." lines
  (`__suppress_context__` honoured, cycles cut);
* per frame `  File "...", line N, in name` and its source line (from `linecache`, not
  re-checked on disk: a file edited since it was cached shows its cached line, which is
  the code that ran more often than the edited file would be);
* a line repeated by recursion shown three times, then "[Previous line repeated N more
  times]";
* the exception line as `module.QualName: message`, then its notes, one per line;
  a SyntaxError by the standard library (its file, line and caret are the point);
* an exception group's members after it, each indented under a `[member i of n]` header
  (at most 15 members and 10 levels, as the standard library).
"""

from __future__ import annotations

import linecache
import traceback
from collections.abc import Sequence
from types import TracebackType
from typing import Final

from core.logging.safe_text import safe_str

__all__ = ["format_exception"]

_CAUSE: Final = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT: Final = "\nDuring handling of the above exception, another exception occurred:\n\n"
_RECURSION_CUTOFF: Final = 3
_MAX_GROUP_WIDTH: Final = 15
_MAX_GROUP_DEPTH: Final = 10
_MEMBER_INDENT: Final = "    "


def format_exception(exc: BaseException, tb: TracebackType | None) -> str:
    """Return `exc` with its traceback `tb` and chained exceptions, no trailing newline."""
    out: list[str] = []
    _format_chain(exc, tb, out, seen=set(), group_depth=0)
    return "".join(out).rstrip("\n")


def _format_chain(
    exc: BaseException,
    tb: TracebackType | None,
    out: list[str],
    seen: set[int],
    group_depth: int,
) -> None:
    """Append `exc` and the exceptions it chains to, oldest first."""
    chain: list[tuple[BaseException, TracebackType | None, str]] = []
    joint = ""  # how the exception appended next leads to the one appended before it
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, tb, joint))
        if current.__cause__ is not None:
            joint, current = _CAUSE, current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            joint, current = _CONTEXT, current.__context__
        else:
            current = None
        tb = current.__traceback__ if current is not None else None
    for link, link_tb, leads_on in reversed(chain):
        _format_single(link, link_tb, out, seen, group_depth)
        out.append(leads_on)


def _format_single(
    exc: BaseException,
    tb: TracebackType | None,
    out: list[str],
    seen: set[int],
    group_depth: int,
) -> None:
    """Append one exception: its traceback, its line and notes, a group's members."""
    if tb is not None:
        out.append("Traceback (most recent call last):\n")
        _format_frames(tb, out)
    out.extend(_exception_lines(exc))
    if isinstance(exc, BaseExceptionGroup):
        _format_members(exc, out, seen, group_depth + 1)


def _format_frames(tb: TracebackType, out: list[str]) -> None:
    """Append a `File ...` entry and its source line per frame, recursion collapsed."""
    last: tuple[str, int | None, str] | None = None
    repeats = 0
    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        where = (code.co_filename, lineno, code.co_name)
        if where == last:
            repeats += 1
            if repeats > _RECURSION_CUTOFF:
                continue
        else:
            _append_repeats(repeats, out)
            last, repeats = where, 1
        filename, _, name = where
        out.append(f'  File "{filename}", line {lineno}, in {name}\n')
        if lineno is not None:
            source = linecache.getline(filename, lineno, frame.f_globals).strip()
            if source:
                out.append(f"    {source}\n")
    _append_repeats(repeats, out)


def _append_repeats(repeats: int, out: list[str]) -> None:
    """Say how many more times the last entry repeated than the ones shown."""
    more = repeats - _RECURSION_CUTOFF
    if more > 0:
        out.append(f"  [Previous line repeated {more} more time{'s' if more > 1 else ''}]\n")


def _exception_lines(exc: BaseException) -> list[str]:
    """`module.QualName: message`, then one line per note (as the standard library)."""
    if isinstance(exc, SyntaxError):
        return traceback.format_exception_only(exc)
    cls = type(exc)
    name = cls.__qualname__
    if cls.__module__ not in ("__main__", "builtins"):
        name = f"{cls.__module__}.{name}"
    message = _text_of(exc, "exception")
    lines = [f"{name}: {message}\n" if message else f"{name}\n"]
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, Sequence) and not isinstance(notes, str):
        lines.extend(f"{_text_of(note, 'note')}\n" for note in notes)
    elif notes is not None:
        lines.append(f"{safe_str(notes)}\n")
    return lines


def _text_of(value: object, what: str) -> str:
    """str(value), or the standard library's placeholder if str() fails."""
    try:
        return str(value)
    except Exception:
        return f"<{what} str() failed>"


def _format_members(
    group: BaseExceptionGroup[BaseException], out: list[str], seen: set[int], depth: int
) -> None:
    """Append a group's members, each indented under a header (bounded like the stdlib)."""
    if depth > _MAX_GROUP_DEPTH:
        out.append(f"{_MEMBER_INDENT}... (max exception group depth reached)\n")
        return
    members = group.exceptions
    for number, member in enumerate(members[:_MAX_GROUP_WIDTH], start=1):
        text: list[str] = []
        _format_chain(member, member.__traceback__, text, seen, depth)
        out.append(f"[member {number} of {len(members)}]\n")
        if not text:
            out.append(f"{_MEMBER_INDENT}(shown above)\n")
        out.extend(
            f"{_MEMBER_INDENT}{line}" if line.strip() else line
            for line in "".join(text).rstrip("\n").splitlines(keepends=True)
        )
        out.append("\n")
    if len(members) > _MAX_GROUP_WIDTH:
        out.append(f"... and {len(members) - _MAX_GROUP_WIDTH} more exceptions\n")
