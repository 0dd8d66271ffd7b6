"""Every range OWASP's SSRF cheat sheet and the IANA registries name is refused, in every
encoding that reaches it; global addresses pass."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import DownloadError, PermanentError, classify_exception
from core.types import ErrorCategory
from core.urls import RefusalRule, UrlPolicy, UrlRefusedError, forbidden_range_of

# The expectation, written independently of core.urls.addresses.
FORBIDDEN_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "168.63.129.16/32",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
]
FORBIDDEN_V6 = [
    "::/128",
    "::1/128",
    "::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "2001:2::/48",
    "3fff::/20",
    "fc00::/7",
    "fd00:ec2::254/128",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
]
NEVER_V4 = ["168.63.129.16/32", "169.254.0.0/16"]
PUBLIC_V4_BLOCKS = ["8.0.0.0/8", "13.64.0.0/11", "20.0.0.0/8", "52.0.0.0/10", "151.101.0.0/16"]
PUBLIC_V6_BLOCKS = ["2606:4700::/32", "2a00:1450::/32", "2620:1ec::/36"]


def addresses_in(
    networks: list[str],
) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Any address inside any of `networks`."""

    def inside(text: str) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        network = ipaddress.ip_network(text)
        first, last = int(network.network_address), int(network.broadcast_address)
        return st.integers(first, last).map(
            lambda n: ipaddress.ip_address(n) if network.version == 4 else ipaddress.IPv6Address(n)
        )

    return st.one_of([inside(text) for text in networks])


forbidden_v4 = addresses_in(FORBIDDEN_V4).map(lambda a: ipaddress.IPv4Address(int(a)))
public_v4 = addresses_in(PUBLIC_V4_BLOCKS).map(lambda a: ipaddress.IPv4Address(int(a)))


def mapped(v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0xFFFF << 32) | int(v4))


def six_to_four(v4: ipaddress.IPv4Address, tail: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | tail)


def nat64(v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x0064FF9B << 96) | int(v4))


def teredo(server: ipaddress.IPv4Address, client: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(
        (0x20010000 << 96) | (int(server) << 64) | (int(client) ^ 0xFFFFFFFF)
    )


@given(forbidden_v4)
def test_forbidden_ipv4_is_refused(address: ipaddress.IPv4Address) -> None:
    """Every address in a forbidden IPv4 range is refused."""
    assert forbidden_range_of(address) is not None


@given(addresses_in(FORBIDDEN_V6))
def test_forbidden_ipv6_is_refused(address: ipaddress.IPv6Address) -> None:
    """Every address in a forbidden IPv6 range is refused."""
    assert forbidden_range_of(address) is not None


@given(forbidden_v4, st.integers(0, 2**80 - 1))
def test_every_ipv6_wrapping_of_a_forbidden_ipv4_is_refused(
    address: ipaddress.IPv4Address, tail: int
) -> None:
    """IPv4-mapped, 6to4, NAT64 and Teredo forms of a forbidden IPv4 address are refused."""
    for wrapped in (mapped(address), six_to_four(address, tail), nat64(address)):
        assert forbidden_range_of(wrapped) is not None, wrapped
    public = ipaddress.IPv4Address("65.54.227.120")
    assert forbidden_range_of(teredo(public, address)) is not None
    assert forbidden_range_of(teredo(address, public)) is not None


@given(public_v4, st.integers(0, 2**80 - 1))
def test_public_addresses_and_their_wrappings_pass(
    address: ipaddress.IPv4Address, tail: int
) -> None:
    """A global IPv4 address passes, bare and in its mapped, 6to4 and NAT64 forms."""
    for form in (address, mapped(address), six_to_four(address, tail), nat64(address)):
        assert forbidden_range_of(form) is None, form


@given(addresses_in(PUBLIC_V6_BLOCKS))
def test_global_ipv6_passes(address: ipaddress.IPv6Address) -> None:
    """A global unicast IPv6 address passes."""
    assert forbidden_range_of(address) is None


@given(st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address))
def test_ipv6_outside_global_unicast_is_refused_unless_it_embeds_a_global_ipv4(
    address: ipaddress.IPv6Address,
) -> None:
    """Any IPv6 address outside 2000::/3 is refused unless it is a mapped or NAT64 global IPv4."""
    embeds = address.ipv4_mapped or (
        ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address in ipaddress.IPv6Network("64:ff9b::/96")
        else None
    )
    if address in ipaddress.IPv6Network("2000::/3") or (embeds is not None and embeds.is_global):
        return
    assert forbidden_range_of(address) is not None


@given(addresses_in(NEVER_V4).map(lambda a: ipaddress.IPv4Address(int(a))))
def test_trusted_networks_never_lift_metadata_or_wireserver(address: ipaddress.IPv4Address) -> None:
    """Trusting every network still refuses cloud metadata, link-local and WireServer."""
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    assert forbidden_range_of(address, everything) is not None
    assert forbidden_range_of(mapped(address), everything) is not None


def test_trusted_networks_lift_the_other_ranges() -> None:
    """A trusted loopback network lets 127.0.0.1 (and its mapped form) through, nothing more."""
    trusted = [ipaddress.ip_network("127.0.0.1/32")]
    loopback = ipaddress.IPv4Address("127.0.0.1")
    assert forbidden_range_of(loopback, trusted) is None
    assert forbidden_range_of(mapped(loopback), trusted) is None
    assert forbidden_range_of(ipaddress.IPv4Address("127.0.0.2"), trusted) is not None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("168.63.129.16", "Azure WireServer"),
        ("169.254.169.254", "link-local / cloud metadata"),
        ("100.100.100.200", "shared address space (CGNAT)"),
        ("::ffff:169.254.169.254", "link-local / cloud metadata"),
        ("64:ff9b:1::a9fe:a9fe", "local-use NAT64"),
    ],
)
def test_refusals_name_the_range(text: str, name: str) -> None:
    """The refusal names the range: WireServer, metadata, CGNAT (Alibaba metadata), local NAT64."""
    verdict = forbidden_range_of(ipaddress.ip_address(text))
    assert verdict is not None
    assert verdict.name == name


def test_a_refusal_is_a_permanent_download_error() -> None:
    """UrlRefusedError is a DownloadError and a PermanentError, classified PERMANENT."""
    with pytest.raises(UrlRefusedError) as caught:
        UrlPolicy(allowed_hosts=["169.254.169.254"]).check_url("https://169.254.169.254/")
    error = caught.value
    assert isinstance(error, DownloadError)
    assert isinstance(error, PermanentError)
    assert classify_exception(error) is ErrorCategory.PERMANENT
    assert error.rule is RefusalRule.FORBIDDEN_ADDRESS
    assert "forbidden_address" in str(error)
