"""Stored names are deterministic and can never leave their prefix, whatever the event holds."""

from __future__ import annotations

import posixpath

from hypothesis import given
from hypothesis import strategies as st

from actors.attachments.naming import attachment_name, sanitise_part

SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@given(
    event_id=st.one_of(st.none(), st.text(max_size=300)),
    topic=st.text(min_size=1, max_size=50),
    partition=st.integers(0, 10_000),
    offset=st.integers(0, 2**63 - 1),
    index=st.integers(0, 100),
    path=st.text(max_size=300),
)
def test_names_stay_under_the_prefix_and_repeat(
    event_id: str | None, topic: str, partition: int, offset: int, index: int, path: str
) -> None:
    """Any event id, topic and URL path gives a safe name under the prefix, the same each time."""
    url = "https://files.example/" + path

    def name_of() -> str:
        return attachment_name(
            "inbox/2026",
            event_id=event_id,
            topic=topic,
            partition=partition,
            offset=offset,
            index=index,
            url=url,
        )

    name = name_of()
    assert name == name_of()
    assert name.startswith("inbox/2026/")
    assert posixpath.normpath(name) == name
    assert len(name) <= 900
    for part in name.split("/"):
        assert set(part) <= SAFE
        assert part.strip(".")


@given(st.text(max_size=200))
def test_sanitised_parts_are_single_safe_segments(text: str) -> None:
    """A sanitised part has only safe characters, is never empty, `.` or `..`."""
    part = sanitise_part(text)
    assert set(part) <= SAFE
    assert part.strip(".")
    assert len(part) <= 100


def test_names_use_the_trace_id_or_the_record_coordinates() -> None:
    """With a trace id the name uses it; without, topic/partition/offset; index and file last."""
    url = "https://h/x/R%C3%A9sum%C3%A9.pdf?q=1"
    with_id = attachment_name(
        "p", event_id="T-9", topic="docs", partition=2, offset=40, index=1, url=url
    )
    without = attachment_name(
        "", event_id=None, topic="docs", partition=2, offset=40, index=1, url=url
    )
    bare = attachment_name(
        "p", event_id=None, topic="t", partition=0, offset=0, index=0, url="https://h/"
    )
    assert with_id == "p/T-9/1-R_sum_.pdf"
    assert without == "docs/2/40/1-R_sum_.pdf"
    assert bare == "p/t/0/0/0-file"
