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
masked, and each only when a cheap substring test finds its marker (so a marker written
in mixed case, "BeArEr", is not looked for):
- every value registered with core.logging.secret_values.register_secret, wherever it
  appears (the process's own configured secrets, found by value, not by shape);
- `name=value` and `name = value` where `name` looks secret under the same rule (SAS
  `sig=...`, `SharedAccessKey=...`, `AccountKey=...`, `password = ...`, `?token=...`):
  a quoted value (single or double quotes, backslash escapes, an optional `b` prefix)
  is masked whole, spaces included; a bare value up to the next whitespace, `&`, `;`,
  `,`, quote or closing bracket;
- `"name": value` and `'name': value`, the same with a quoted name and a colon: dict
  reprs and JSON;
- `Authorization: <scheme> <credentials>` and `Authorization=...`: the credentials;
- `Bearer <token>`: the token, when it has 8 or more token characters or holds anything
  but lower-case letters ("the bearer token expired" is prose); after `Authorization:`
  any token, whatever its length;
- `Basic <base64>` whose base64 decodes to `user:password`: the base64;
- URL user info, `scheme://user:password@host`: the password.
An unquoted `name: value` is not recognised (it is how plain sentences read, "token:
refreshed"); pass structured data as fields, where the name rule applies.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Final

from core.logging.safe_text import safe_str
from core.logging.secret_values import MASK, redact_secrets

__all__ = [
    "MASK",
    "SECRET_NAME_PARTS",
    "is_secret_name",
    "mask_text",
    "mask_value",
]

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

_ASSIGNMENT: Final = re.compile(
    r"""(?<![A-Za-z0-9_.\-])(?:(["'])([A-Za-z0-9_.\-]+)\1\s*[:=]\s*|([A-Za-z0-9_.\-]+)\s*=\s*)"""
    r"""(b?"(?:[^"\\]|\\.)*"?|b?'(?:[^'\\]|\\.)*'?|[^\s&;,"'}\])]+)"""
)
"""`name=value`, `name = value`, `"name": value`; linear time (a name starts only where a
name-character run starts; a quoted value runs to its closing quote or the end)."""
_AUTHORIZATION: Final = re.compile(
    r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)"
    r"((?:bearer|basic|digest|negotiate|sharedaccesssignature)\s+)?([^\s\"',;]+)"
)
_BEARER: Final = re.compile(
    r"\b([Bb][Ee][Aa][Rr][Ee][Rr]\s+)"
    r"(?=[A-Za-z0-9\-._~+/]{8}|[a-z]*[A-Z0-9\-._~+/])[A-Za-z0-9\-._~+/]+=*"
)
"""A bearer token: 8 or more token characters, or any holding more than lower-case letters
(in prose, "bearer token" is a word; after an Authorization header any length is masked)."""
_BASIC: Final = re.compile(r"(?i)\b(basic\s+)([A-Za-z0-9+/]{4,}={0,2})")
_URL_USER_INFO: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*:)([^\s/@]+)(@)")


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
    """Return `text` with registered secrets and credential-shaped substrings masked.

    Each shape is looked for only when a plain substring test finds its marker, so the
    common message (none of them) costs a few `in` tests.
    """
    text = redact_secrets(text)
    if "uthorization" in text or "UTHORIZATION" in text:
        text = _AUTHORIZATION.sub(_mask_authorization, text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(r"\1" + MASK, text)
    if "asic" in text or "ASIC" in text:
        text = _BASIC.sub(_mask_basic, text)
    if "@" in text and "://" in text:
        text = _URL_USER_INFO.sub(r"\1" + MASK + r"\3", text)
    if "=" in text or (":" in text and ('"' in text or "'" in text)):
        lowered = text.lower()
        if any(part in lowered for part in SECRET_NAME_PARTS):
            text = _ASSIGNMENT.sub(_mask_assignment, text)
    return text


def _mask_assignment(match: re.Match[str]) -> str:
    """Mask the value of one `name=value` whose name looks secret, keeping its quotes."""
    if not is_secret_name(match.group(2) or match.group(3)):
        return match.group(0)
    value = match.group(4)
    head = match.group(0)[: match.start(4) - match.start(0)]
    prefix = "b" if value[:1] == "b" and value[1:2] in ("'", '"') else ""
    quote = value[len(prefix) : len(prefix) + 1]
    if quote in ("'", '"'):
        closed = len(value) > len(prefix) + 1 and value.endswith(quote)
        return head + prefix + quote + MASK + (quote if closed else "")
    return head + MASK


def _mask_authorization(match: re.Match[str]) -> str:
    """Mask the credentials of an Authorization header, keeping its scheme."""
    return match.group(1) + (match.group(2) or "") + MASK


def _mask_basic(match: re.Match[str]) -> str:
    """Mask `Basic <base64>` when the base64 is `user:password`; leave prose alone."""
    encoded = match.group(2)
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return match.group(1) + MASK if b":" in decoded else match.group(0)
