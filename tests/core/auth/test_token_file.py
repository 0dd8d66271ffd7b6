"""TokenFileCredential on real files: formats, errors that say what to fix, re-read on change."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from auth_fakes import make_jwt
from hypothesis import given, settings
from hypothesis import strategies as st

from core.auth.errors import CredentialConfigurationError, CredentialError
from core.auth.token_file import TokenFileCredential, jwt_expiry, parse_token_document
from core.types import ErrorCategory

EXP = 1_900_000_000


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_raw_jwt_file_uses_its_exp_claim(tmp_path: Path) -> None:
    """A file holding a bare JWT yields that JWT with its exp as expiry."""
    jwt = make_jwt({"aud": "https://eventhubs.azure.net", "exp": EXP})
    credential = TokenFileCredential(write(tmp_path / "token", jwt + "\n"))
    access = credential.get_token("https://eventhubs.azure.net/.default")
    assert (access.token, access.expires_on) == (jwt, EXP)


@pytest.mark.parametrize(
    "expires_on",
    [EXP, float(EXP), str(EXP), "2030-03-17T17:46:40+00:00", "2030-03-17T18:46:40+01:00"],
)
def test_json_file_with_expires_on_in_any_accepted_form(tmp_path: Path, expires_on: object) -> None:
    """expires_on may be epoch seconds (number or string) or ISO 8601 with an offset."""
    path = write(
        tmp_path / "token.json", json.dumps({"access_token": "opaque", "expires_on": expires_on})
    )
    access = TokenFileCredential(path).get_token("scope")
    assert (access.token, access.expires_on) == ("opaque", EXP)


def test_json_in_azure_cli_shape_is_accepted(tmp_path: Path) -> None:
    """`az account get-access-token -o json` output (accessToken, expires_on) can be the file."""
    document = {"accessToken": "from-az", "expires_on": EXP, "tokenType": "Bearer"}
    access = TokenFileCredential(write(tmp_path / "t.json", json.dumps(document))).get_token("s")
    assert (access.token, access.expires_on) == ("from-az", EXP)


def test_json_without_expiry_falls_back_to_the_jwt_exp(tmp_path: Path) -> None:
    """A JSON file with only access_token uses the token's own exp claim."""
    jwt = make_jwt({"exp": EXP})
    path = write(tmp_path / "t.json", json.dumps({"access_token": jwt}))
    assert TokenFileCredential(path).get_token("s").expires_on == EXP


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("not a token", "neither JSON nor a JWT"),
        (make_jwt({"sub": "no-exp"}), "neither JSON nor a JWT"),
        (make_jwt({"exp": "soon"}), "neither JSON nor a JWT"),
        ("{not json", "not valid JSON"),
        ('{"expires_on": 1}', "no `access_token`"),
        ('{"access_token": ""}', "no `access_token`"),
        ('{"access_token": "opaque"}', "no `expires_on`"),
        ('{"access_token": "x", "expires_on": true}', "epoch seconds or an ISO 8601"),
        ('{"access_token": "x", "expires_on": [1]}', "epoch seconds or an ISO 8601"),
        ('{"access_token": "x", "expires_on": "tomorrow"}', "not epoch seconds nor ISO"),
        ('{"access_token": "x", "expires_on": "2030-01-01T00:00:00"}', "no UTC offset"),
        ('{"access_token": "x", "expires_on": NaN}', "not a finite number"),
        ('{"access_token": "x", "expires_on": "inf"}', "not a finite number"),
        ('{"access_token": "x", "expires_on": 1' + "0" * 400 + "}", "not a finite number"),
        (make_jwt({"exp": 1e400}), "neither JSON nor a JWT"),
    ],
)
def test_unusable_content_is_an_auth_error_naming_the_problem(
    tmp_path: Path, content: str, reason: str
) -> None:
    """Each malformed file gives a CredentialError (AUTH: the writer can fix it) saying why."""
    path = write(tmp_path / "token", content)
    with pytest.raises(CredentialError, match="holds no usable token") as caught:
        TokenFileCredential(path).get_token("s")
    assert reason in str(caught.value)
    assert str(path) in str(caught.value)
    assert caught.value.category is ErrorCategory.AUTH


def test_json_array_is_not_a_token_document(tmp_path: Path) -> None:
    """Only a JSON object is read as JSON; an array is refused as neither JSON nor a JWT."""
    path = write(tmp_path / "t.json", '[{"access_token": "x", "expires_on": 1}]')
    with pytest.raises(CredentialError, match="neither JSON nor a JWT"):
        TokenFileCredential(path).get_token("s")


def test_missing_file_says_to_check_the_variable(tmp_path: Path) -> None:
    """A missing file is AUTH (its writer may not have run yet) and names AZURE_TOKEN_FILE."""
    path = tmp_path / "absent"
    with pytest.raises(CredentialError, match="AZURE_TOKEN_FILE") as caught:
        TokenFileCredential(path).get_token("s")
    assert str(path) in str(caught.value)
    assert caught.value.category is ErrorCategory.AUTH


def test_unreadable_path_is_a_configuration_error(tmp_path: Path) -> None:
    """A path that exists but cannot be read as a file is PERMANENT: a person must fix access."""
    directory = tmp_path / "a-directory"
    directory.mkdir()
    with pytest.raises(CredentialConfigurationError, match="cannot be read") as caught:
        TokenFileCredential(directory).get_token("s")
    assert caught.value.category is ErrorCategory.PERMANENT


def test_symlink_loop_is_a_configuration_error(tmp_path: Path) -> None:
    """A path whose stat fails other than by absence (a symlink loop) is PERMANENT."""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(CredentialConfigurationError, match="cannot be read"):
        TokenFileCredential(tmp_path / "a").get_token("s")


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    """Binary content is reported as not UTF-8 text."""
    path = write(tmp_path / "token", b"\xff\xfe\x00garbage")
    with pytest.raises(CredentialError, match="not UTF-8"):
        TokenFileCredential(path).get_token("s")


def test_rewritten_file_is_re_read(tmp_path: Path) -> None:
    """Writing a new token to the file makes the next call return it."""
    path = write(tmp_path / "token", make_jwt({"exp": EXP, "n": 1}))
    credential = TokenFileCredential(path)
    first = credential.get_token("s").token
    replacement = make_jwt({"exp": EXP + 3600, "n": 2, "pad": "longer"})
    write(path, replacement)
    access = credential.get_token("s")
    assert first != replacement
    assert (access.token, access.expires_on) == (replacement, EXP + 3600)


def test_same_size_rewrite_with_new_mtime_is_re_read(tmp_path: Path) -> None:
    """A token of the same length is still noticed through the modification time."""
    path = write(tmp_path / "token", json.dumps({"access_token": "aaaa", "expires_on": EXP}))
    credential = TokenFileCredential(path)
    assert credential.get_token("s").token == "aaaa"
    write(path, json.dumps({"access_token": "bbbb", "expires_on": EXP}))
    stamp = time.time_ns() + 5_000_000_000
    os.utime(path, ns=(stamp, stamp))
    assert credential.get_token("s").token == "bbbb"


def test_unchanged_signature_is_not_re_read(tmp_path: Path) -> None:
    """While mtime, size and inode stay the same, the parsed token is reused without reading."""
    path = write(tmp_path / "token", json.dumps({"access_token": "aaaa", "expires_on": EXP}))
    credential = TokenFileCredential(path)
    assert credential.get_token("s").token == "aaaa"
    before = path.stat()
    with path.open("r+") as handle:
        handle.write(json.dumps({"access_token": "bbbb", "expires_on": EXP}))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert credential.get_token("s").token == "aaaa"


def test_atomic_replace_by_rename_is_re_read(tmp_path: Path) -> None:
    """Replacing the file by rename (how writers should update it) is noticed."""
    path = write(tmp_path / "token", json.dumps({"access_token": "old", "expires_on": EXP}))
    credential = TokenFileCredential(path)
    assert credential.get_token("s").token == "old"
    staged = write(tmp_path / "token.tmp", json.dumps({"access_token": "new", "expires_on": EXP}))
    os.replace(staged, path)
    assert credential.get_token("s").token == "new"


def test_has_changed_tracks_the_file(tmp_path: Path) -> None:
    """has_changed is true before a read, false after, true after a write or deletion."""
    path = write(tmp_path / "token", json.dumps({"access_token": "a", "expires_on": EXP}))
    credential = TokenFileCredential(path)
    assert credential.has_changed()
    credential.get_token("s")
    assert not credential.has_changed()
    write(path, json.dumps({"access_token": "changed", "expires_on": EXP}))
    assert credential.has_changed()
    credential.get_token("s")
    path.unlink()
    assert credential.has_changed()


def test_scope_does_not_change_the_token(tmp_path: Path) -> None:
    """The file holds one token; every scope gets it."""
    path = write(tmp_path / "token", make_jwt({"exp": EXP}))
    credential = TokenFileCredential(path)
    assert credential.get_token("a").token == credential.get_token("b", "c").token


def test_repr_names_the_path_not_the_token(tmp_path: Path) -> None:
    """repr shows the path and never the token it read."""
    jwt = make_jwt({"exp": EXP, "secret": "x" * 20})
    credential = TokenFileCredential(write(tmp_path / "token", jwt))
    credential.get_token("s")
    assert str(tmp_path / "token") in repr(credential)
    assert jwt not in repr(credential)


@settings(max_examples=75, deadline=None)
@given(
    token=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1).filter(
        lambda text: text.strip() == text and text != ""
    ),
    expires_on=st.integers(min_value=0, max_value=4_102_444_800),
)
def test_json_documents_round_trip(token: str, expires_on: int) -> None:
    """Any non-blank token and integer expiry written as JSON parse back unchanged."""
    document = json.dumps({"access_token": token, "expires_on": expires_on})
    assert parse_token_document(document) == (token, float(expires_on))


@settings(max_examples=75, deadline=None)
@given(
    exp=st.integers(min_value=0, max_value=4_102_444_800),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda key: key != "exp"),
        st.text(max_size=20),
        max_size=3,
    ),
)
def test_jwt_exp_round_trips(exp: int, extra: dict[str, str]) -> None:
    """The exp of any JWT-shaped token is read back, whatever other claims it has."""
    assert jwt_expiry(make_jwt({**extra, "exp": exp})) == exp


@pytest.mark.parametrize("text", ["a.!!!.c", "a.bm90IGpzb24.c", "a.WzFd.c", "a..c"])
def test_jwt_shaped_text_without_json_claims_has_no_expiry(text: str) -> None:
    """Three segments whose middle is not base64 JSON claims give no expiry."""
    assert jwt_expiry(text) is None


@settings(max_examples=100, deadline=None)
@given(text=st.text())
def test_jwt_expiry_is_total(text: str) -> None:
    """jwt_expiry returns a number or None for any text; it never raises."""
    result = jwt_expiry(text)
    assert result is None or isinstance(result, float)
