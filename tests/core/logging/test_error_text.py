"""error_text: any exception renders as short, valid UTF-8 text without secrets, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.logging import MASK, error_text
from core.logging.error_text import ELLIPSIS, truncate_utf8


class StrRaisesError(Exception):
    """An exception whose __str__ fails."""

    def __str__(self) -> str:
        raise RuntimeError("broken __str__")


class NothingRendersError(Exception):
    """An exception whose __str__ and __repr__ both fail."""

    def __str__(self) -> str:
        raise RuntimeError("broken __str__")

    def __repr__(self) -> str:
        raise RuntimeError("broken __repr__")


def test_an_exception_whose_str_raises_renders_by_repr_or_type_name() -> None:
    """A failing __str__ falls back to repr(), then to a placeholder naming the type."""
    assert error_text(StrRaisesError("x")) == "StrRaisesError('x')"
    assert error_text(NothingRendersError()) == "<unprintable NothingRendersError>"


def test_a_message_with_lone_surrogates_renders_as_valid_utf8() -> None:
    """Text decoded with surrogateescape becomes backslash escapes, encodable as UTF-8."""
    bad = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    rendered = error_text(ValueError(bad))
    assert rendered == "caf\\udce9 \\udcff"
    rendered.encode("utf-8")


def test_an_empty_message_renders_as_the_type_name() -> None:
    """An error without a message still says what it is."""
    assert error_text(KeyError()) == "KeyError"


def test_credentials_in_the_message_are_masked() -> None:
    """The masking rules apply to error messages as to log messages."""
    assert error_text(ValueError("password = hunter2")) == f"password = {MASK}"


@given(text=st.text(), max_bytes=st.integers(min_value=len(ELLIPSIS.encode()), max_value=300))
def test_truncation_fits_the_byte_limit_and_keeps_a_prefix(text: str, max_bytes: int) -> None:
    """The result fits in max_bytes, is the text itself or a prefix of it plus the ellipsis."""
    safe = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    cut = truncate_utf8(safe, max_bytes)
    assert len(cut.encode()) <= max_bytes
    if cut != safe:
        assert cut.endswith(ELLIPSIS)
        assert safe.startswith(cut[: -len(ELLIPSIS)])


@given(message=st.text(), max_bytes=st.integers(min_value=3, max_value=2000))
def test_any_message_renders_encodable_and_bounded(message: str, max_bytes: int) -> None:
    """Whatever the message holds, the text encodes as UTF-8 within the limit."""
    rendered = error_text(RuntimeError(message), max_bytes=max_bytes)
    assert len(rendered.encode("utf-8")) <= max_bytes


def test_a_limit_without_room_for_the_ellipsis_is_refused() -> None:
    """The marker of a cut must fit."""
    with pytest.raises(ValueError, match="max_bytes"):
        truncate_utf8("abc", 2)
