"""Text that cannot fail: output must never be lost to a misbehaving __str__ or a bad string.

`safe_str` renders any object, whatever its `__str__` and `__repr__` do. `utf8_safe`
makes any str encodable as UTF-8: a str decoded with `surrogateescape` (file names, bytes
read from the environment or a record) holds lone surrogates, which `str.encode()`, JSON
encoders and Kafka header encoding all refuse; they become backslash escapes instead.
"""

from __future__ import annotations

__all__ = ["safe_str", "utf8_safe"]


def safe_str(value: object) -> str:
    """Return str(value), falling back to repr() and then to a placeholder naming the type."""
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"


def utf8_safe(text: str) -> str:
    """Return `text` with lone surrogates (not encodable as UTF-8) as backslash escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
