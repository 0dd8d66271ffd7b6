"""The registry of the process's own secret values: redacted by value from any text."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from log_capture import CapturedLog

from core.logging import (
    MASK,
    JSONFormatter,
    error_text,
    forget_secrets,
    mask_text,
    redact_secrets,
    register_secret,
)
from core.logging.secret_values import MIN_SECRET_LENGTH

_SECRET_CHARACTERS = st.characters(
    blacklist_categories=["Cs"], blacklist_characters="*", min_codepoint=32
)
secrets_strategy = st.text(_SECRET_CHARACTERS, min_size=MIN_SECRET_LENGTH, max_size=24)


@pytest.fixture(autouse=True)
def no_registered_secrets() -> Iterator[None]:
    """Each test starts and ends with an empty registry (it is process-wide)."""
    forget_secrets()
    yield
    forget_secrets()


@given(
    secrets=st.lists(secrets_strategy, min_size=1, max_size=4),
    pieces=st.lists(st.text(max_size=12), min_size=1, max_size=5),
)
def test_no_registered_secret_survives_in_any_text(secrets: list[str], pieces: list[str]) -> None:
    """Whatever text surrounds them, registered secrets never appear in the redacted text."""
    forget_secrets()
    for secret in secrets:
        assert register_secret(secret)
    text = "".join(piece + secrets[i % len(secrets)] for i, piece in enumerate(pieces))
    for render in (redact_secrets, mask_text):
        out = render(text)
        for secret in secrets:
            assert secret not in out


@given(secret=secrets_strategy, prefix=st.text(max_size=20), suffix=st.text(max_size=20))
def test_a_registered_secret_never_appears_in_a_json_log_line(
    secret: str, prefix: str, suffix: str
) -> None:
    """In the message, a field or a traceback, the decoded JSON line never holds the secret."""
    forget_secrets()
    register_secret(secret)
    log = CapturedLog(JSONFormatter())
    try:
        raise RuntimeError(prefix + secret + suffix)
    except RuntimeError:
        log.logger.exception("%s%s%s", prefix, secret, suffix, extra={"detail": secret})
    record = json.loads(log.lines()[0])
    assert record["detail"] == MASK
    for value in record.values():
        assert secret not in value


def test_percent_encoded_and_repr_forms_are_redacted_too() -> None:
    """A secret quoted into a URL or a repr is found in that form as well."""
    secret = "p@ss wörd'\\"
    register_secret(secret)
    for text in (f"url?x={quote(secret, safe='')}", repr({"value": secret}), secret):
        assert redact_secrets(text).count(MASK) >= 1
        assert secret not in redact_secrets(text)
        assert quote(secret, safe="") not in redact_secrets(text)


def test_short_and_mask_only_values_are_not_registered() -> None:
    """Values too short to find by value, or made of the mask's characters, are refused."""
    assert not register_secret("abc")
    assert not register_secret("*****")
    assert redact_secrets("abc and *****") == "abc and *****"


def test_text_without_a_secret_is_returned_as_the_same_object() -> None:
    """Redaction costs nothing visible when the text holds no registered value."""
    register_secret("correct horse")
    text = "nothing to hide here"
    assert redact_secrets(text) is text


def test_error_text_redacts_registered_secrets_from_an_error_message() -> None:
    """An error quoting the configured password renders without it."""
    register_secret("Sup3rS3cret!")
    rendered = error_text(ValueError("login as bob with Sup3rS3cret! refused"))
    assert rendered == f"login as bob with {MASK} refused"


def test_a_secret_registered_after_a_message_was_cached_is_still_redacted() -> None:
    """The formatter's per-message cache cannot keep a secret registered later."""
    log = CapturedLog(JSONFormatter())
    log.logger.info("token is abcdef-ghij")
    register_secret("abcdef-ghij")
    log.logger.info("token is abcdef-ghij")
    first, second = log.records()
    assert "abcdef-ghij" in first["message"]
    assert second["message"] == f"token is {MASK}"


def test_registering_is_safe_from_many_threads() -> None:
    """Concurrent registrations all end up redacted (one pattern, replaced under a lock)."""
    values = [f"secret-{n:04d}" for n in range(64)]
    threads = [threading.Thread(target=register_secret, args=(v,)) for v in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = " ".join(values)
    assert redact_secrets(text) == " ".join([MASK] * len(values))
