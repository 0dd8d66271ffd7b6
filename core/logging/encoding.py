"""Turn any log payload into one line of valid JSON, whatever the caller put in it.

The fast path is a single `orjson.dumps` with a `default=` hook: bytes are decoded as
UTF-8 with replacement characters (and masked like a message), sets become lists, and
any other unknown object becomes its str() (its repr() if str() raises), masked like a
message: an exception passed as a field may quote a connection string. NaN and
infinities become null, as orjson writes them. Only when orjson still refuses (integers
beyond 64 bits, strings holding lone surrogates, nesting beyond orjson's limit) is the
payload rebuilt into plain JSON types and encoded again; that slow path never raises.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from core.logging.masking import mask_text
from core.logging.safe_text import safe_str, utf8_safe

__all__ = ["dumps", "orjson_default", "to_json_safe"]

_MAX_DEPTH: Final = 64
_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1


def dumps(payload: Any) -> str:
    """Encode `payload` as compact single-line JSON text; never raises."""
    try:
        return orjson.dumps(payload, default=orjson_default).decode()
    except TypeError:
        return orjson.dumps(to_json_safe(payload)).decode()


def to_json_safe(value: Any, depth: int = 0) -> Any:
    """Return `value` rebuilt from str, int, float, bool, None, list and str-keyed dict only."""
    if value is None or type(value) is bool or type(value) is float:
        return value
    if isinstance(value, int):
        return int(value) if _INT_MIN <= value <= _UINT_MAX else str(value)
    if isinstance(value, str):
        return utf8_safe(value)
    if depth >= _MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {
            utf8_safe(key if isinstance(key, str) else safe_str(key)): to_json_safe(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_safe(item, depth + 1) for item in value]
    try:
        return orjson.loads(orjson.dumps(value, default=orjson_default))
    except TypeError:
        return utf8_safe(safe_str(value))


def orjson_default(value: Any) -> Any:
    """Render what orjson cannot serialise by itself (its `default=` hook)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return mask_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, set | frozenset):
        return list(value)
    return mask_text(safe_str(value))
