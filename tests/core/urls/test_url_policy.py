"""The URL policy: encodings of forbidden hosts are refused, allowed hosts pass, each
refusal names its rule; resolution judges every address of the answer."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigurationError
from core.urls import RefusalRule, UrlPolicy, UrlRefusedError

FORBIDDEN_EXAMPLES = [
    "127.0.0.1",
    "10.1.2.3",
    "169.254.169.254",
    "168.63.129.16",
    "100.64.0.1",
    "192.168.1.1",
    "0.0.0.0",
    "198.18.0.1",
]
LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True).filter(
    lambda label: not label.isdigit()
)
ipv4_ints = st.sampled_from(
    [int(ipaddress.IPv4Address(a)) for a in FORBIDDEN_EXAMPLES]
) | st.integers(0, 2**32 - 1)


def octets(number: int) -> list[int]:
    return [(number >> shift) & 0xFF for shift in (24, 16, 8, 0)]


def numeric_spellings(number: int) -> list[str]:
    """The non-canonical spellings inet_aton and WHATWG accept for one IPv4 address."""
    a, b, c, d = octets(number)
    return [
        str(number),
        hex(number),
        oct(number).replace("0o", "0"),
        ".".join(f"0{part:o}" for part in (a, b, c, d)),
        ".".join(hex(part) for part in (a, b, c, d)),
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"0x{a:x}.{b}.{c}.{d}",
        f"{a}.{b}.{c}.0{d:o}",
    ]


def policy(**options: object) -> UrlPolicy:
    return UrlPolicy(allowed_domain_suffixes=["example.com"], **options)  # type: ignore[arg-type]


def refusal(policy: UrlPolicy, url: str) -> RefusalRule:
    with pytest.raises(UrlRefusedError) as caught:
        policy.check_url(url)
    return caught.value.rule


@given(ipv4_ints)
def test_non_canonical_numeric_hosts_are_refused(number: int) -> None:
    """Decimal, hex, octal, short and mixed IPv4 spellings are refused as NUMERIC_HOST."""
    everything = UrlPolicy(allowed_hosts=[str(ipaddress.IPv4Address(number))])
    for spelling in numeric_spellings(number):
        if spelling == str(ipaddress.IPv4Address(number)):
            continue
        assert refusal(everything, f"https://{spelling}/") is RefusalRule.NUMERIC_HOST, spelling
        assert refusal(everything, f"https://{spelling}./") is RefusalRule.NUMERIC_HOST, spelling


@given(st.sampled_from(FORBIDDEN_EXAMPLES), st.booleans(), st.booleans())
def test_forbidden_literals_are_refused_in_every_form(
    text: str, trailing_dot: bool, full_width: bool
) -> None:
    """Canonical, trailing-dot, full-width (IDNA-mapped) and bracketed IPv6 forms are refused."""
    address = ipaddress.IPv4Address(text)
    host = text + ("." if trailing_dot else "")
    if full_width:
        host = host.translate(str.maketrans("0123456789.", "０１２３４５６７８９。"))
    checker = UrlPolicy(allowed_hosts=[text, f"[::ffff:{text}]", f"[64:ff9b::{text}]"])
    assert refusal(checker, f"https://{host}/") is RefusalRule.FORBIDDEN_ADDRESS
    for wrapped in (f"::ffff:{text}", f"64:ff9b::{text}"):
        assert refusal(checker, f"https://[{wrapped}]/") in (
            RefusalRule.FORBIDDEN_ADDRESS,
            RefusalRule.HOST_NOT_ALLOWED,
        )
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert refusal(UrlPolicy(allowed_hosts=[f"[{mapped}]"]), f"https://[{mapped}]/") is (
        RefusalRule.FORBIDDEN_ADDRESS
    )


@given(st.lists(LABEL, min_size=0, max_size=3), st.booleans())
def test_hosts_under_an_allowed_suffix_pass(labels: list[str], trailing_dot: bool) -> None:
    """Any subdomain of an allowed suffix (with or without a trailing dot) passes, normalised."""
    host = ".".join([*labels, "example.com"])
    validated = policy().check_url(f"https://{host.upper()}{'.' if trailing_dot else ''}/f.pdf")
    assert validated.url == f"https://{host}/f.pdf"
    assert validated.host.name == host
    assert validated.port == 443


@given(LABEL)
def test_lookalike_domains_are_not_allowed(label: str) -> None:
    """`<x>example.com` and `example.com.<x>` are not under the suffix example.com."""
    checker = policy()
    assert refusal(checker, f"https://{label}example.com/") is RefusalRule.HOST_NOT_ALLOWED
    assert refusal(checker, f"https://example.com.{label}/") in (
        RefusalRule.HOST_NOT_ALLOWED,
        RefusalRule.NUMERIC_HOST,
    )


def test_idna_hosts_are_compared_in_their_ascii_form() -> None:
    """An internationalised host matches its punycode entry in the allow-list."""
    checker = UrlPolicy(allowed_hosts=["xn--bcher-kva.example"])
    assert checker.check_url("https://BÜCHER.example/a").url == "https://xn--bcher-kva.example/a"
    assert refusal(checker, "https://bucher.example/") is RefusalRule.HOST_NOT_ALLOWED
    assert refusal(checker, "https://xn--zz.example/") is RefusalRule.INVALID_HOST


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://cdn.example.com/", RefusalRule.SCHEME),
        ("ftp://cdn.example.com/", RefusalRule.SCHEME),
        ("https://user:pw@cdn.example.com/", RefusalRule.USERINFO),
        ("https://user@cdn.example.com/", RefusalRule.USERINFO),
        ("https://cdn.example.com:8443/", RefusalRule.PORT),
        ("https://cdn.example.com:99999/", RefusalRule.MALFORMED),
        ("https://cdn.example.com\\@evil.test/", RefusalRule.MALFORMED),
        ("https://cdn.example.com/a b", RefusalRule.MALFORMED),
        ("https://cdn.example.com/\n", RefusalRule.MALFORMED),
        ("https://[fe80::1%25eth0]/", RefusalRule.INVALID_HOST),
        ("https://[zz::1]/", RefusalRule.MALFORMED),
        ("https:///path", RefusalRule.INVALID_HOST),
        ("https://cdn_x.example.com/", RefusalRule.INVALID_HOST),
        ("https://evil.test/", RefusalRule.HOST_NOT_ALLOWED),
        ("https://files.0x7f/", RefusalRule.NUMERIC_HOST),
        ("https://cdn.example.com/" + "a" * 3000, RefusalRule.URL_TOO_LONG),
    ],
)
def test_each_rule_is_named(url: str, rule: RefusalRule) -> None:
    """Each broken rule is named in the refusal."""
    error_rule = refusal(policy(), url)
    assert error_rule is rule


def test_the_canonical_url_drops_the_fragment_and_quotes_non_ascii() -> None:
    """The URL to fetch has no fragment, an explicit path and percent-encoded non-ASCII."""
    validated = policy(allowed_ports=[443, 8443]).check_url("https://a.example.com:8443?q=ü#frag")
    assert validated.url == "https://a.example.com:8443/?q=%C3%BC"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"allowed_hosts": ["bad host"]}, "allowed_hosts"),
        ({"allowed_domain_suffixes": ["0x7f.1"]}, "allowed_domain_suffixes"),
        ({"allowed_ports": [0]}, "allowed_ports"),
        ({"max_url_length": 1}, "max_url_length"),
    ],
)
def test_bad_settings_are_configuration_errors(options: dict[str, object], problem: str) -> None:
    """A bad allow-list entry, port or length is a ConfigurationError naming the setting."""
    with pytest.raises(ConfigurationError, match=problem):
        UrlPolicy(**options)  # type: ignore[arg-type]


def answering(*answers: Sequence[str]) -> tuple[list[str], object]:
    """A resolver giving `answers` in turn, and the list of names it was asked for."""
    asked: list[str] = []
    remaining = list(answers)

    async def resolver(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return remaining.pop(0)

    return asked, resolver


@pytest.mark.anyio
async def test_one_forbidden_address_in_an_answer_refuses_the_host() -> None:
    """An answer mixing a public and a private address is refused as a whole."""
    asked, resolver = answering(["93.184.215.14", "10.0.0.7"])
    checker = policy(resolver=resolver)
    host = checker.check_url("https://cdn.example.com/").host
    with pytest.raises(UrlRefusedError) as caught:
        await checker.resolve(host, 443)
    assert caught.value.rule is RefusalRule.FORBIDDEN_ADDRESS
    assert caught.value.context["address"] == "10.0.0.7"
    assert asked == ["cdn.example.com"]


@pytest.mark.anyio
async def test_resolution_returns_every_allowed_address_once() -> None:
    """A public answer comes back deduplicated, in order; an empty one is NO_ADDRESS."""
    _, resolver = answering(
        ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "93.184.215.14"], []
    )
    checker = policy(resolver=resolver)
    host = checker.check_url("https://cdn.example.com/").host
    addresses = await checker.resolve(host, 443)
    assert [str(a) for a in addresses] == [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    ]
    with pytest.raises(UrlRefusedError) as caught:
        await checker.resolve(host, 443)
    assert caught.value.rule is RefusalRule.NO_ADDRESS


@pytest.mark.anyio
async def test_the_system_resolver_answers_for_localhost_and_it_is_refused() -> None:
    """With the real system resolver, `localhost` resolves to loopback and is refused."""
    checker = UrlPolicy(allowed_hosts=["localhost"])
    host = checker.check_url("https://localhost/").host
    with pytest.raises(UrlRefusedError) as caught:
        with anyio.fail_after(10):
            await checker.resolve(host, 443)
    assert caught.value.rule is RefusalRule.FORBIDDEN_ADDRESS


FORBIDDEN_ANSWERS = st.one_of(
    st.integers(
        int(ipaddress.IPv4Address("10.0.0.0")), int(ipaddress.IPv4Address("10.255.255.255"))
    ).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**16 - 1).map(lambda n: str(ipaddress.IPv4Address(0xA9FE0000 | n))),
    st.integers(0, 2**24 - 1).map(lambda n: f"::ffff:{ipaddress.IPv4Address(0x7F000000 | n)}"),
    st.integers(0, 2**24 - 1).map(
        lambda n: str(ipaddress.IPv6Address((0x2002 << 112) | ((0x7F000000 | n) << 80)))
    ),
    st.integers(0, 2**16 - 1).map(
        lambda n: str(ipaddress.IPv6Address((0x64FF9B << 96) | 0xA9FE0000 | n))
    ),
    st.just("168.63.129.16"),
    st.just("fe80::1%2"),
)


@given(
    st.lists(st.sampled_from(["93.184.215.14", "2606:4700::1111"]), max_size=3), FORBIDDEN_ANSWERS
)
def test_any_forbidden_answer_refuses_the_name(public: list[str], forbidden: str) -> None:
    """A DNS answer with one private, metadata, mapped, 6to4 or NAT64 address among public
    ones refuses the host, wherever the forbidden address sits in the answer."""

    async def resolver(host: str, port: int) -> Sequence[str]:
        return [*public, forbidden]

    checker = policy(resolver=resolver)
    host = checker.check_url("https://cdn.example.com/").host

    async def resolve() -> None:
        await checker.resolve(host, 443)

    with pytest.raises(UrlRefusedError) as caught:
        anyio.run(resolve)
    assert caught.value.rule is RefusalRule.FORBIDDEN_ADDRESS
