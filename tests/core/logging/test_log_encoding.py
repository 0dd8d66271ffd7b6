"""JSON encoding of log payloads: the fast path and the fallback that never fails."""

from __future__ import annotations

import datetime
import enum
import uuid

import orjson

from core.logging.encoding import dumps, to_json_safe
from core.logging.safe_text import safe_str


class Colour(enum.Enum):
    """An enum value, which orjson writes by its value."""

    RED = "red"


class Weird:
    """An object orjson does not know, with a readable str()."""

    def __str__(self) -> str:
        return "weird!"


def test_dumps_writes_compact_json_for_plain_payloads() -> None:
    """Ordinary payloads give orjson's compact JSON text."""
    assert dumps({"a": [1, 2.5, None, True], "b": "x"}) == '{"a":[1,2.5,null,true],"b":"x"}'


def test_dumps_keeps_orjson_native_types() -> None:
    """Datetimes, UUIDs and enums are written the way orjson writes them."""
    moment = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    decoded = orjson.loads(dumps({"at": moment, "id": ident, "colour": Colour.RED}))
    assert decoded == {"at": moment.isoformat(), "id": str(ident), "colour": "red"}


def test_dumps_renders_unknown_objects_bytes_and_sets() -> None:
    """Unknown objects become str(), bytes decode with replacement, sets become lists."""
    decoded = orjson.loads(dumps({"o": Weird(), "b": bytearray(b"\xffa"), "s": frozenset({1})}))
    assert decoded == {"o": "weird!", "b": "\ufffda", "s": [1]}


def test_dumps_masks_credentials_in_the_text_of_unknown_objects() -> None:
    """An exception object passed as a field is written as its str(), credentials masked."""
    error = ConnectionError("Endpoint=sb://n/;SharedAccessKey=c2VjcmV0")
    assert orjson.loads(dumps({"error": error})) == {
        "error": "Endpoint=sb://n/;SharedAccessKey=***"
    }


def test_dumps_falls_back_for_what_orjson_refuses() -> None:
    """Huge ints, surrogate keys and non-str keys go through the fallback and stay valid."""
    decoded = orjson.loads(dumps({"n": -(2**70), "\udcff": 1, "d": {(1,): 2}}))
    assert decoded == {"n": str(-(2**70)), "\\udcff": 1, "d": {"(1,)": 2}}


def test_dumps_survives_nesting_deeper_than_orjson_allows() -> None:
    """Nesting past orjson's limit is cut with a placeholder rather than raising."""
    deep: list[object] = []
    for _ in range(400):
        deep = [deep]
    text = dumps(deep)
    assert "<nested too deep>" in text
    assert orjson.loads(text)


def test_to_json_safe_keeps_unsigned_64_bit_ints_and_stringifies_bigger() -> None:
    """Integers within orjson's range stay numbers; beyond it they become text."""
    assert to_json_safe([2**64 - 1, 2**64, -(2**63), -(2**63) - 1]) == [
        2**64 - 1,
        str(2**64),
        -(2**63),
        str(-(2**63) - 1),
    ]


def test_to_json_safe_stringifies_objects_whose_encoding_fails() -> None:
    """An object orjson cannot encode even through the hook becomes its clean str()."""

    class SurrogateStr:
        def __str__(self) -> str:
            return "bad\ud800"

    assert to_json_safe(SurrogateStr()) == "bad\\ud800"


def test_safe_str_falls_back_to_repr_then_to_the_type_name() -> None:
    """str() failing gives repr(); both failing gives a placeholder naming the type."""

    class NoStr:
        def __str__(self) -> str:
            raise ValueError

        def __repr__(self) -> str:
            return "NoStr()"

    class Neither(NoStr):
        def __repr__(self) -> str:
            raise ValueError

    assert safe_str(NoStr()) == "NoStr()"
    assert safe_str(Neither()) == "<unprintable Neither>"
