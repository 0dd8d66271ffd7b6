"""How a field name and value appear in output: renamed on clashes, masked when secret.

Shared by the formatters (for `extra=` fields, decided once per name and cached) and by
LogContext (whose fields are rendered once on entry, so a record logged inside the
context only copies them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from core.logging.masking import MASK, is_secret_name, mask_value
from core.logging.safe_text import safe_str

__all__ = ["OUTPUT_KEYS", "PLAIN_SCALARS", "output_name", "render_fields"]

OUTPUT_KEYS: Final = frozenset({"timestamp", "level", "logger", "message", "exception", "stack"})
"""Keys the JSON formatter writes itself; fields with these names get a `field_` prefix."""

PLAIN_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
"""Value types written as they are: nothing inside them can need masking."""


def output_name(key: object) -> tuple[str, bool]:
    """Return the name a field is written under and whether its value must be masked."""
    name = key if type(key) is str else safe_str(key)
    secret = is_secret_name(name)
    if name in OUTPUT_KEYS:
        name = "field_" + name
    return name, secret


def render_fields(fields: Mapping[Any, Any]) -> dict[str, Any]:
    """Return `fields` as they will be written: renamed, secrets masked, containers copied."""
    rendered: dict[str, Any] = {}
    for key, value in fields.items():
        name, secret = output_name(key)
        if secret:
            rendered[name] = MASK
        elif type(value) in PLAIN_SCALARS:
            rendered[name] = value
        else:
            rendered[name] = mask_value(value)
    return rendered
