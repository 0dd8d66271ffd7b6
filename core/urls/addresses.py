"""Which IP addresses a download may connect to: global unicast only, never metadata.

The rule is an allow-rule with named exceptions, so every refusal can say which range
it hit:

* IPv4 and IPv6 ranges that the IANA special-purpose registries (and OWASP's SSRF
  cheat sheet) name as not globally reachable are refused by name: "this network",
  private, shared (CGNAT), loopback, link-local, IETF protocol assignments,
  documentation, benchmarking, multicast, reserved, broadcast, unspecified,
  unique-local, site-local, discard-only, SRv6, and every IPv6 address outside global
  unicast (2000::/3).
* Some public addresses are refused too: Azure's WireServer (168.63.129.16) is a
  public address that `ipaddress.is_global` accepts, and the deprecated 6to4 relay
  anycast range routes to whoever announces it.
* Addresses that embed an IPv4 address are judged by the IPv4 address they reach:
  IPv4-mapped (::ffff:a.b.c.d), 6to4 (2002:AABB:CCDD::), NAT64 (64:ff9b::a.b.c.d) and
  Teredo (both its server and its client address). The local-use NAT64 prefix
  64:ff9b:1::/48 is refused outright: where its IPv4 address sits depends on the
  network's own prefix length, and it is never globally reachable. The deprecated
  IPv4-compatible form (::a.b.c.d) and SIIT's IPv4-translated form are refused too.
* After the named ranges, `ipaddress`' own `is_global` must also hold (a backstop for
  ranges the registries add later).
* `trusted_networks` lift every refusal except the `never` ranges: cloud metadata and
  link-local (169.254.0.0/16, fe80::/10, AWS's fd00:ec2::254), and WireServer. Tests
  use it to reach a server on 127.0.0.1; an operator may use it for an internal file
  server they mean to reach. Its default is empty.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FORBIDDEN_RANGES",
    "ForbiddenRange",
    "IPAddress",
    "IPNetwork",
    "embedded_ipv4",
    "forbidden_range_of",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ForbiddenRange:
    """A range downloads never connect to; `never` ranges cannot be trusted either."""

    network: IPNetwork
    name: str
    never: bool = False

    def describe(self) -> str:
        """`name (network)`, as refusals print it."""
        return f"{self.name} ({self.network})"


def _range(network: str, name: str, *, never: bool = False) -> ForbiddenRange:
    return ForbiddenRange(ipaddress.ip_network(network), name, never)


FORBIDDEN_RANGES: Final[tuple[ForbiddenRange, ...]] = (
    # Checked first: the ranges no setting can lift.
    _range("168.63.129.16/32", "Azure WireServer", never=True),
    _range("169.254.0.0/16", "link-local / cloud metadata", never=True),
    _range("fd00:ec2::254/128", "AWS metadata (IPv6)", never=True),
    _range("fe80::/10", "IPv6 link-local", never=True),
    # IPv4 special-purpose ranges.
    _range("0.0.0.0/8", "this network"),
    _range("10.0.0.0/8", "private"),
    _range("100.64.0.0/10", "shared address space (CGNAT)"),
    _range("127.0.0.0/8", "loopback"),
    _range("172.16.0.0/12", "private"),
    _range("192.0.0.0/24", "IETF protocol assignments"),
    _range("192.0.2.0/24", "documentation (TEST-NET-1)"),
    _range("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    _range("192.168.0.0/16", "private"),
    _range("198.18.0.0/15", "benchmarking"),
    _range("198.51.100.0/24", "documentation (TEST-NET-2)"),
    _range("203.0.113.0/24", "documentation (TEST-NET-3)"),
    _range("224.0.0.0/4", "multicast"),
    _range("255.255.255.255/32", "broadcast"),
    _range("240.0.0.0/4", "reserved"),
    # IPv6 special-purpose ranges (embedded IPv4 forms are unwrapped before these).
    _range("::/128", "unspecified"),
    _range("::1/128", "IPv6 loopback"),
    _range("::/96", "IPv4-compatible (deprecated)"),
    _range("::ffff:0:0:0/96", "IPv4-translated (SIIT)"),
    _range("64:ff9b:1::/48", "local-use NAT64"),
    _range("100::/64", "discard-only"),
    _range("2001::/23", "IETF protocol assignments"),
    _range("2001:db8::/32", "documentation"),
    _range("3fff::/20", "documentation"),
    _range("5f00::/16", "SRv6 segment identifiers"),
    _range("fc00::/7", "unique-local"),
    _range("fec0::/10", "site-local (deprecated)"),
    _range("ff00::/8", "IPv6 multicast"),
)

_NEVER: Final = tuple(entry for entry in FORBIDDEN_RANGES if entry.never)
_GLOBAL_UNICAST_V6: Final = ipaddress.IPv6Network("2000::/3")
_OUTSIDE_GLOBAL_UNICAST: Final = ForbiddenRange(
    ipaddress.IPv6Network("::/0"), "outside IPv6 global unicast (2000::/3)"
)
_NOT_GLOBAL: Final = ForbiddenRange(ipaddress.IPv4Network("0.0.0.0/0"), "not globally reachable")
_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR: Final = ipaddress.IPv6Network("2002::/16")
_TEREDO: Final = ipaddress.IPv6Network("2001::/32")


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address reaches (mapped, 6to4, NAT64, Teredo); () if none."""
    if address in _MAPPED:
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address in _NAT64:
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address in _SIX_TO_FOUR:
        return (ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF),)
    if address in _TEREDO:
        server, client = address.teredo or (None, None)
        return tuple(ip for ip in (server, client) if ip is not None)
    return ()


def forbidden_range_of(
    address: IPAddress, trusted_networks: Sequence[IPNetwork] = ()
) -> ForbiddenRange | None:
    """The forbidden range `address` (or an address it embeds) falls in; None if allowed."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            address = ipaddress.IPv6Address(address.compressed.partition("%")[0])
        embedded = embedded_ipv4(address)
        if embedded:
            for ipv4 in embedded:
                verdict = forbidden_range_of(ipv4, trusted_networks)
                if verdict is not None:
                    return verdict
            return None
    never = _first_containing(address, _NEVER)
    if never is not None:
        return never
    if _is_trusted(address, trusted_networks):
        return None
    named = _first_containing(address, FORBIDDEN_RANGES)
    if named is not None:
        return named
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return _OUTSIDE_GLOBAL_UNICAST
    if not address.is_global:
        return _NOT_GLOBAL
    return None


def _first_containing(
    address: IPAddress, ranges: Iterable[ForbiddenRange]
) -> ForbiddenRange | None:
    for entry in ranges:
        if entry.network.version == address.version and address in entry.network:
            return entry
    return None


def _is_trusted(address: IPAddress, trusted_networks: Sequence[IPNetwork]) -> bool:
    return any(
        network.version == address.version and address in network for network in trusted_networks
    )
