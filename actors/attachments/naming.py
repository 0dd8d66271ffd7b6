"""Deterministic names for stored attachments, so a redelivered record overwrites.

The name of an attachment depends only on the record and the URL's position in it:

    <prefix>/<event id>/<n>-<file name>

* `<event id>` is the value of the configured trace-id field of the event when it has
  one, else `<topic>/<partition>/<offset>` of the record. Either names the same event
  on every delivery, so a record delivered again (after a crash, a rebalance, a retry)
  writes the same names and replaces what the earlier attempt stored.
* `<n>` is the URL's position among the event's URLs (0, 1, ...), so two URLs ending
  in the same file name do not collide.
* `<file name>` is the last path segment of the URL, percent-decoded.

Every part is sanitised: characters other than letters, digits, `.`, `_` and `-`
become `_`; a part made only of dots becomes `_`; each part is cut to 100 characters
and the whole name to 900 (Azure Blob names may have 1024). A name can therefore never
climb out of the prefix (`..`, absolute paths, backslashes) whatever the event says.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Final

__all__ = ["attachment_name", "sanitise_part"]

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
_MAX_PART: Final = 100
_MAX_NAME: Final = 900


def sanitise_part(text: str, *, fallback: str = "_") -> str:
    """`text` as one safe path segment (see the module docstring)."""
    cleaned = _UNSAFE.sub("_", text)[:_MAX_PART]
    if not cleaned.strip("."):
        return fallback
    return cleaned


def attachment_name(
    prefix: str,
    *,
    event_id: str | None,
    topic: str,
    partition: int,
    offset: int,
    index: int,
    url: str,
) -> str:
    """The stored name of the `index`th URL of an event (see the module docstring)."""
    if event_id:
        event_part = sanitise_part(event_id)
    else:
        event_part = f"{sanitise_part(topic)}/{partition}/{offset}"
    last_segment = urllib.parse.urlsplit(url).path.rstrip("/").rpartition("/")[2]
    file_name = sanitise_part(urllib.parse.unquote(last_segment), fallback="file")
    parts = [sanitise_part(part) for part in prefix.split("/") if part]
    name = "/".join([*parts, event_part, f"{index}-{file_name}"])
    return name[:_MAX_NAME]
