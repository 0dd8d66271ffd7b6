"""Secret masking: which field names are secret, nested values, credentials in text."""

from __future__ import annotations

import dataclasses
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.logging import MASK, SECRET_NAME_PARTS, is_secret_name, mask_text, mask_value
from core.logging.masking import TOO_DEEP


@pytest.mark.parametrize("part", SECRET_NAME_PARTS)
def test_every_listed_part_makes_a_name_secret_in_any_case_and_position(part: str) -> None:
    """A name containing a listed part, in any case, anywhere, is secret."""
    assert is_secret_name(part)
    assert is_secret_name(f"db_{part.upper()}_value")


@pytest.mark.parametrize(
    "name", ["topic", "partition", "offset", "consumer_group", "message", "duration_ms", "host"]
)
def test_ordinary_field_names_are_not_secret(name: str) -> None:
    """Names without a listed part, like the Kafka fields, stay readable."""
    assert not is_secret_name(name)


@pytest.mark.parametrize("name", ["partition_key", "record_key", "signal", "token_count"])
def test_the_substring_rule_also_masks_look_alike_names(name: str) -> None:
    """The documented, deliberately broad rule: any name holding "key", "sig", "token"."""
    assert is_secret_name(name)


def test_mask_value_masks_secret_keys_in_nested_dicts_lists_and_tuples() -> None:
    """Secret-named entries are masked at every depth; other values are kept."""
    value = {"servers": [{"host": "a", "password": "p"}], "pair": ({"secret": 1}, 2)}
    assert mask_value(value) == {
        "servers": [{"host": "a", "password": MASK}],
        "pair": [{"secret": MASK}, 2],
    }


def test_mask_value_masks_a_whole_value_under_a_secret_name() -> None:
    """A secret name hides its whole value, structure included."""
    assert mask_value({"credentials": {"user": "u", "pass": "p"}}) == {"credentials": MASK}


def test_mask_value_turns_dataclasses_into_masked_dicts() -> None:
    """A dataclass instance becomes a dict of its fields, secrets masked."""

    @dataclasses.dataclass
    class Login:
        user: str
        token: str

    assert mask_value([Login("u", "t")]) == [{"user": "u", "token": MASK}]


def test_mask_value_stringifies_non_string_keys_and_checks_them() -> None:
    """Non-str keys become their str(), and that text decides masking."""
    assert mask_value({1: "a", ("api_key", 2): "b"}) == {"1": "a", "('api_key', 2)": MASK}


def test_mask_value_uses_repr_for_keys_whose_str_fails() -> None:
    """A key object whose str() raises is written by its repr() instead."""

    class Odd:
        def __str__(self) -> str:
            raise ValueError

        def __repr__(self) -> str:
            return "Odd()"

    assert mask_value({Odd(): 1}) == {"Odd()": 1}


def test_mask_value_cuts_cycles_with_a_placeholder() -> None:
    """A self-referencing structure ends in a placeholder instead of recursing forever."""
    loop: list[object] = []
    loop.append(loop)
    masked = mask_value(loop)
    depth = 0
    while isinstance(masked, list):
        masked = masked[0]
        depth += 1
    assert masked == TOO_DEEP
    assert depth > 1


def test_mask_value_leaves_scalars_and_unknown_objects_alone() -> None:
    """Values with no inner names (numbers, text, objects) come back unchanged."""
    marker = object()
    assert mask_value(marker) is marker
    assert mask_value("hunter2") == "hunter2"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://acct.blob.core.windows.net/c/b?sv=2022&sig=AbC%2Bd&se=2030", "AbC%2Bd"),
        ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=s3cr3t=;EntityPath=t", "s3cr3t"),
        ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy==;", "Zm9vYmFy"),
        ("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig_part", "eyJhbGciOiJIUzI1NiJ9"),
        ("login with password=hunter2 failed", "hunter2"),
        ("callback?access_token='abcdef123456'", "abcdef123456"),
    ],
)
def test_mask_text_hides_credentials_in_their_usual_shapes(text: str, secret: str) -> None:
    """SAS signatures, shared/account keys, bearer tokens and password= values are masked."""
    masked = mask_text(text)
    assert secret not in masked
    assert MASK in masked


def test_mask_text_keeps_the_rest_of_the_text() -> None:
    """Only the secret value goes: the name, separators and other parameters remain."""
    assert mask_text("url?sv=1&sig=abc&se=2") == "url?sv=1&sig=***&se=2"
    assert mask_text("Authorization: bearer abcdefgh12") == "Authorization: bearer ***"


def test_mask_text_returns_text_without_markers_as_the_same_object() -> None:
    """Text without "=" or "bearer" is returned untouched, without copying."""
    text = "processed 500 records in 12 ms"
    assert mask_text(text) is text


def test_mask_text_leaves_short_words_after_bearer_and_harmless_assignments() -> None:
    """ "bearer token" in prose and `offset=5` are not credentials and stay."""
    text = "refreshing the bearer token; offset=5 partition=3"
    assert mask_text(text) == text


def test_mask_text_takes_linear_time_on_long_name_like_runs() -> None:
    """A 200 kB run of name characters with "key" and "=" is masked in well under a second."""
    text = "a-" * 100_000 + "key=value"
    started = time.perf_counter()
    masked = mask_text(text)
    assert time.perf_counter() - started < 1.0
    assert masked.endswith("key=***")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc", "Authorization: Bearer ***"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=*** ***"),
        ("password = hunter2 was refused", "password = *** was refused"),
        ("password = 'two words' refused", "password = '***' refused"),
        ("{'password': 'a b', 'user': 'u'}", "{'password': '***', 'user': 'u'}"),
        ('{"client_secret": "x\\"y", "n": 1}', '{"client_secret": "***", "n": 1}'),
        ("{'token': b'raw', 'n': 1}", "{'token': b'***', 'n': 1}"),
        ("{'api_key': 12345}", "{'api_key': ***}"),
        ("GET https://user:pa55@host:8080/path", "GET https://user:***@host:8080/path"),
        ("Basic dXNlcjpwYXNz sent", "Basic *** sent"),
    ],
)
def test_mask_text_masks_headers_spaced_assignments_reprs_urls_and_basic_auth(
    text: str, expected: str
) -> None:
    """Short bearer tokens after Authorization, `a = b`, dict/JSON reprs, URL user info, Basic."""
    assert mask_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["basic setup done", "token: refreshed", "the bearer token expired", "https://host:443/x"],
)
def test_mask_text_leaves_prose_and_urls_without_credentials(text: str) -> None:
    """Words after "basic"/"bearer", unquoted `name: value` and plain URLs stay readable."""
    assert mask_text(text) == text


@given(
    name=st.sampled_from(["password", "client_secret", "sas_token", "AccountKey"]),
    value=st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="'\\\""), min_size=1
    ),
    quote=st.sampled_from(["'", '"']),
    spaces=st.sampled_from(["", " ", "  "]),
)
def test_a_quoted_secret_value_is_masked_whole_in_any_repr(
    name: str, value: str, quote: str, spaces: str
) -> None:
    """`name = 'value'`, `'name': 'value'` and `"name": "value"` never leak the value."""
    for text in (
        f"{name}{spaces}={spaces}{quote}{value}{quote}",
        f"{{{quote}{name}{quote}:{spaces}{quote}{value}{quote}}}",
    ):
        masked = mask_text(text)
        assert f"{quote}{MASK}{quote}" in masked
        assert masked.count(value) < text.count(value) or value in MASK
