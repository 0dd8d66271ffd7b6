"""One canonical spelling for every host, so the allow-list and the address rules see
the host the HTTP client will dial.

* DNS names are mapped with UTS #46 (IDNA 2008, non-transitional, STD3 rules: what
  browsers and the `idna` package do), lower-cased, stripped of one trailing dot and
  returned as their ASCII (A-label) form. Full-width digits and ideographic dots are
  mapped before anything else looks at the name, so "１２７。０。０。１" is judged as
  127.0.0.1.
* IPv4 literals are accepted only in canonical dotted-decimal form (four parts,
  0-255, no leading zeros). The other spellings that C's `inet_aton` and the WHATWG
  URL standard accept (2130706433, 0x7f.1, 0177.0.0.1, 127.1) are refused outright
  rather than decoded: two parsers that decode them differently are how filters are
  bypassed, and no legitimate download URL uses them. A host whose last label is a
  number (decimal or 0x-hex) is such a literal for the WHATWG parser, so it is judged
  the same way ("files.0x7f" is refused).
* IPv6 literals must be bracketed in the URL; a zone identifier (fe80::1%eth0) is
  refused.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

import idna

from core.urls.addresses import IPAddress
from core.urls.errors import RefusalRule, UrlRefusedError

__all__ = ["NormalisedHost", "normalise_host"]

_MAX_NAME_LENGTH: Final = 253
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL: Final = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)")
_CANONICAL_OCTET: Final = re.compile(r"(?:0|[1-9][0-9]{0,2})")


@dataclass(frozen=True, slots=True)
class NormalisedHost:
    """A host in canonical form: `name` is the A-label name or the address's text."""

    name: str
    address: IPAddress | None = None
    """The address when the host is an IP literal, else None."""

    @property
    def for_url(self) -> str:
        """The host as it goes into a URL (IPv6 literals in brackets)."""
        if isinstance(self.address, ipaddress.IPv6Address):
            return f"[{self.name}]"
        return self.name


def normalise_host(raw: str, *, bracketed: bool = False) -> NormalisedHost:
    """The canonical form of `raw`; UrlRefusedError (INVALID_HOST / NUMERIC_HOST) if none.

    `bracketed` says the URL wrote the host in [brackets], i.e. as an IPv6 literal.
    """
    if bracketed:
        return _ipv6_literal(raw)
    if not raw:
        raise _invalid(raw, "the host is empty")
    text = raw
    if not text.isascii():
        try:
            text = idna.uts46_remap(text, std3_rules=True, transitional=False)
        except idna.IDNAError as exc:
            raise _invalid(raw, f"not a valid internationalised name ({exc})") from None
    text = text.lower()
    if text.endswith("."):
        text = text[:-1]
    labels = text.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return _ipv4_literal(raw, labels)
    return NormalisedHost(_dns_name(raw, text))


def _ipv6_literal(raw: str) -> NormalisedHost:
    if "%" in raw:
        raise _invalid(raw, "IPv6 zone identifiers are not allowed")
    try:
        address = ipaddress.IPv6Address(raw)
    except ValueError:
        raise _invalid(raw, "not a valid IPv6 address") from None
    return NormalisedHost(address.compressed, address)


def _ipv4_literal(raw: str, labels: list[str]) -> NormalisedHost:
    canonical = len(labels) == 4 and all(
        _CANONICAL_OCTET.fullmatch(label) and int(label) <= 255 for label in labels
    )
    if not canonical:
        raise UrlRefusedError(
            RefusalRule.NUMERIC_HOST,
            f"host {raw!r} is a numeric address in a non-canonical form; "
            "write IPv4 addresses as four decimal numbers (a.b.c.d)",
            context={"host": raw},
        )
    address = ipaddress.IPv4Address(".".join(labels))
    return NormalisedHost(str(address), address)


def _dns_name(raw: str, text: str) -> str:
    if not text:
        raise _invalid(raw, "the host is empty")
    if not text.isascii():
        try:
            text = idna.encode(text, uts46=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise _invalid(raw, f"not a valid internationalised name ({exc})") from None
    if len(text) > _MAX_NAME_LENGTH:
        raise _invalid(raw, f"the name is longer than {_MAX_NAME_LENGTH} characters")
    for label in text.split("."):
        if not _LABEL.fullmatch(label):
            raise _invalid(raw, f"label {label!r} is not a valid DNS label")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise _invalid(raw, f"label {label!r} is not valid punycode ({exc})") from None
    return text


def _invalid(raw: str, problem: str) -> UrlRefusedError:
    return UrlRefusedError(
        RefusalRule.INVALID_HOST, f"host {raw!r}: {problem}", context={"host": raw}
    )
