"""str() that cannot fail: log output must never be lost to a misbehaving __str__."""

from __future__ import annotations

__all__ = ["safe_str"]


def safe_str(value: object) -> str:
    """Return str(value), falling back to repr() and then to a placeholder naming the type."""
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return f"<unprintable {type(value).__name__}>"
