"""Redact the process's own secret values wherever they appear in text.

Masking by name (core.logging.masking) finds credentials by the shape of the text around
them; it cannot know that a bare word in an error message is the configured password.
The process does know its secrets: whoever reads them from the configuration registers
them here (`register_secret`), and from then on `redact_secrets` replaces every
occurrence by "***". `mask_text` calls it, so log messages, tracebacks, dead-letter error
headers and error texts built through core.logging.error_text are all covered, and the
log formatters run it over each finished line, so fields are covered too.

Decisions:

* The registry is process-wide (one module-level pattern, replaced atomically under a
  lock when a value is added): a secret found anywhere must be hidden everywhere.
* A value is also registered in the forms it takes once quoted: percent-encoded (in a
  URL or a connection string), JSON-escaped and repr-escaped (a secret holding a quote,
  a backslash or a control character looks different inside a JSON line or a repr).
* Values shorter than `MIN_SECRET_LENGTH` characters are not registered (the call
  returns False): redacting every "ab" would destroy the logs while protecting nothing,
  since so short a secret is guessable anyway; masking by name still applies to them.
  Values made only of "*" are not registered either: they cannot be told from the mask.
* The longest value is matched first, and redaction is repeated until nothing changes,
  so no registered value survives, not even one formed across a replaced neighbour. If
  that has not settled after a few passes, the whole text becomes "***".
* Cost when nothing is registered: one global read. Otherwise one regular-expression
  search per text; a text without a secret is returned as it is.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Final, TypeVar, cast
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "forget_secrets",
    "redact_secrets",
    "redact_value",
    "register_secret",
]

MASK: Final = "***"
"""What a secret is replaced by, in values and in text."""

MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not registered (see the module docstring)."""

_MAX_PASSES: Final = 4
_MAX_DEPTH: Final = 32

T = TypeVar("T")

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> bool:
    """Redact `value` (and its quoted forms) from all text from now on.

    Returns True when it is registered (or already was), False when it is too short or
    made only of mask characters (see the module docstring). Thread-safe.
    """
    global _pattern
    if len(value) < MIN_SECRET_LENGTH or not value.strip("*"):
        return False
    with _lock:
        before = len(_values)
        _values.update(form for form in _quoted_forms(value) if len(form) >= MIN_SECRET_LENGTH)
        if len(_values) != before:
            _pattern = _compile(_values)
    return True


def forget_secrets() -> None:
    """Forget every registered value (a process reloading its configuration, tests)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def redact_secrets(text: str) -> str:
    """Return `text` with every registered secret value replaced by "***"."""
    pattern = _pattern
    if pattern is None or pattern.search(text) is None:
        return text
    for _ in range(_MAX_PASSES):
        redacted = pattern.sub(MASK, text)
        if redacted == text:
            return text
        text = redacted
    return MASK if pattern.search(text) else text


def redact_value(value: T) -> T:
    """`value` with registered secrets redacted from every string in it, keys included.

    Dicts, lists and tuples are rebuilt (as dict, list, list) when they hold a string;
    other values are returned as they are (the encoders mask what they render). Deeper
    than 32 levels, nothing is changed: the encoders cut such nesting anyway.
    """
    if _pattern is None:
        return value
    return cast(T, _redact_nested(value, 0))


def _redact_nested(value: object, depth: int) -> object:
    if type(value) is str:
        return redact_secrets(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            _redact_nested(key, depth + 1): _redact_nested(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_nested(item, depth + 1) for item in value]
    return value


def _quoted_forms(value: str) -> set[str]:
    """`value` as it appears raw, percent-encoded, JSON-escaped and repr-escaped."""
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.add(json.dumps(value)[1:-1])
    forms.add(repr(value)[1:-1])
    return forms


def _compile(values: Iterable[str]) -> re.Pattern[str]:
    """One alternation, longest value first so a longer secret wins over its prefix."""
    ordered = sorted(values, key=lambda form: (-len(form), form))
    return re.compile("|".join(re.escape(form) for form in ordered))
