"""Keep credentials out of log output.

Field names. A field is secret when its name, lower-cased, contains any of
`SECRET_NAME_PARTS` as a substring: password, passwd, secret, token, authorization, sig,
key, credential, connection_string, connectionstring. Its whole value (whatever its type,
nested structure included) becomes "***". The rule applies to extra= fields, LogContext
fields and, recursively, to the keys of nested dicts, lists, tuples, sets and dataclasses.
The substring rule is the requester's and is deliberately broad: "partition_key",
"api_key", "signal" and "token_count" are all masked. Name a field that must stay readable
without those parts (a Kafka record key is never logged: KafkaLogContext has no key field).

Message text. Messages are free text, so only the shapes credentials take in it are
masked, and only when a cheap marker test finds a candidate ("=" or "bearer" present):
- `name=value` where `name` looks secret under the same rule (SAS `sig=...`,
  `SharedAccessKey=...`, `AccountKey=...`, `password=...`, `?token=...`): the value
  (after an optional opening quote), up to the next whitespace, `&`, `;`, `,` or quote,
  becomes "***";
- `Bearer <token>` with a token of 8 or more token characters: the token becomes "***".
`name: value` forms and values in other shapes are not recognised: pass structured data
as fields, where the name rule applies.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Final

from core.logging.safe_text import safe_str

__all__ = [
    "MASK",
    "SECRET_NAME_PARTS",
    "is_secret_name",
    "mask_text",
    "mask_value",
]

MASK: Final = "***"

SECRET_NAME_PARTS: Final[tuple[str, ...]] = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "sig",
    "key",
    "credential",
    "connection_string",
    "connectionstring",
)

MAX_DEPTH: Final = 32
"""Nesting deeper than this is replaced by a placeholder: stops cycles, never leaks."""

TOO_DEEP: Final = "<nested too deep>"

_CACHE_LIMIT: Final = 4096
_secret_name_cache: dict[str, bool] = {}

_ASSIGNMENT: Final = re.compile(r"(?<![A-Za-z0-9_.\-])([A-Za-z0-9_.\-]+)(=[\"']?)([^\s&;,\"']+)")
"""`name=value`; linear time (a name starts only where a name-character run starts)."""
_BEARER: Final = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*")


def is_secret_name(name: str) -> bool:
    """Return True when a field called `name` must have its value masked."""
    cached = _secret_name_cache.get(name)
    if cached is not None:
        return cached
    lowered = name.lower()
    secret = any(part in lowered for part in SECRET_NAME_PARTS)
    if len(_secret_name_cache) < _CACHE_LIMIT:
        _secret_name_cache[name] = secret
    return secret


def mask_value(value: Any, depth: int = 0) -> Any:
    """Return `value` with every secret-named entry of nested containers masked.

    Containers are rebuilt, never mutated: dicts (non-str keys become their str()), lists,
    tuples and sets become lists, dataclass instances become dicts of their fields.
    Anything else is returned as it is, for the JSON encoder to render.
    """
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, Mapping):
        masked: dict[str, Any] = {}
        for key, item in value.items():
            name = key if type(key) is str else safe_str(key)
            masked[name] = MASK if is_secret_name(name) else mask_value(item, depth + 1)
        return masked
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(item, depth + 1) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return mask_value(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth
        )
    return value


def mask_text(text: str) -> str:
    """Return `text` with SAS signatures, shared keys, bearer tokens and the like masked."""
    has_assignment = "=" in text
    if not has_assignment and "earer" not in text and "EARER" not in text:
        return text
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(r"\1" + MASK, text)
    if has_assignment and any(part in lowered for part in SECRET_NAME_PARTS):
        text = _ASSIGNMENT.sub(_mask_assignment, text)
    return text


def _mask_assignment(match: re.Match[str]) -> str:
    """Mask the value of one `name=value` whose name looks secret."""
    name, separator, _ = match.groups()
    return name + separator + MASK if is_secret_name(name) else match.group(0)
