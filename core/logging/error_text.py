"""An error's message as it may leave the process: in a header, a log field, another error.

Rendering an error is the last thing that may fail while handling one, and the failure
would replace the original: an exception whose `__str__` raises, a message holding lone
surrogates (text decoded with `surrogateescape`) that UTF-8 encoding refuses, a message
quoting a credential, a message of megabytes. `error_text` answers all four: it never
raises, its result always encodes as UTF-8, secrets are masked (core.logging.masking, the
registered values included), and it is cut to `max_bytes` UTF-8 bytes when asked, ending
in "…" so a reader sees that it was cut.
"""

from __future__ import annotations

from typing import Final

from core.logging.masking import mask_text
from core.logging.safe_text import safe_str, utf8_safe

__all__ = ["ELLIPSIS", "error_text", "truncate_utf8"]

ELLIPSIS: Final = "…"
"""Ends a text that was cut."""


def error_text(error: BaseException, *, max_bytes: int | None = None) -> str:
    """`str(error)`, safe to emit (see the module docstring); the type's name if empty."""
    text = mask_text(utf8_safe(safe_str(error))) or type(error).__name__
    return text if max_bytes is None else truncate_utf8(text, max_bytes)


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` if it fits `max_bytes` UTF-8 bytes, else its longest prefix that fits with "…".

    Never splits a character. `text` must be encodable (see core.logging.safe_text).
    """
    if max_bytes < len(ELLIPSIS.encode()):
        raise ValueError(f"max_bytes must leave room for {ELLIPSIS!r}, got {max_bytes}")
    if len(text) * 4 <= max_bytes:  # cannot be over: no character takes more than 4 bytes
        return text
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(ELLIPSIS.encode())
    return encoded[:room].decode("utf-8", errors="ignore") + ELLIPSIS
