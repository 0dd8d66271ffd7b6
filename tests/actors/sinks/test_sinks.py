"""Built-in handlers (print, jsonl) and loading a user's handler by its import path."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import stat
import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import Record
from actors.sinks import (
    ForwardHandler,
    JsonLinesHandler,
    PrintHandler,
    build_handler,
    close_handler,
    load_handler,
    record_to_json,
)
from core.errors import ConfigurationError, PermanentError, classify_exception
from core.types import ErrorCategory

maybe_bytes = st.none() | st.binary(max_size=64) | st.text(max_size=32).map(str.encode)
records = st.builds(
    Record,
    topic=st.sampled_from(["events", "a.b-c"]),
    partition=st.integers(0, 8),
    offset=st.integers(0, 2**40),
    key=maybe_bytes,
    value=maybe_bytes,
    headers=st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=16)), max_size=3).map(tuple),
    timestamp=st.none() | st.integers(0, 2**42),
)


def _bytes_back(value: object) -> bytes | None:
    """Invert the documented JSON form of bytes: text is UTF-8, an object holds base64."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    assert isinstance(value, dict)
    return base64.b64decode(value["base64"])


@given(records)
def test_record_json_gives_back_every_byte(record: Record) -> None:
    """Key, value and header values survive the JSON form exactly, UTF-8 or not."""
    data = orjson.loads(orjson.dumps(record_to_json(record)))
    assert (data["topic"], data["partition"], data["offset"]) == (
        record.topic,
        record.partition,
        record.offset,
    )
    assert data["timestamp"] == record.timestamp
    assert _bytes_back(data["key"]) == record.key
    assert _bytes_back(data["value"]) == record.value
    assert [(name, _bytes_back(value)) for name, value in data["headers"]] == list(record.headers)


@given(st.lists(records, max_size=5))
def test_print_writes_exactly_one_line_per_record(batch: list[Record]) -> None:
    """Even values holding newlines print as one line each, in order, starting with the place."""
    stream = io.StringIO()
    handler = PrintHandler(stream)
    for record in batch:
        handler(record)
    *lines, rest = stream.getvalue().split("\n")  # a line ends with "\n" (not NEL, U+2028...)
    assert (len(lines), rest) == (len(batch), "")
    for line, record in zip(lines, batch, strict=True):
        assert line.startswith(f"{record.topic}[{record.partition}]@{record.offset} key=")


@pytest.mark.anyio
async def test_jsonl_appends_one_line_per_record_across_reopen(tmp_path: Path) -> None:
    """Lines accumulate in order, also after the file was closed and reopened."""
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"earlier": true}\n')
    handler = JsonLinesHandler(path)
    first, second = Record("t", 0, 1, b"k", b"v1"), Record("t", 1, 7, None, b"\xff")
    handler(first)
    handler.close()
    handler(second)
    await close_handler(handler)
    lines = path.read_bytes().splitlines()
    assert orjson.loads(lines[0]) == {"earlier": True}
    assert [orjson.loads(line) for line in lines[1:]] == [
        record_to_json(first),
        record_to_json(second),
    ]


def test_a_jsonl_line_is_readable_before_the_sync(tmp_path: Path) -> None:
    """Each line reaches the file when its record is handled; `before_commit` adds nothing."""
    path = tmp_path / "out.jsonl"
    handler = JsonLinesHandler(path)
    record = Record("t", 0, 3, None, b'{"id": 1}')
    handler(record)
    written = path.read_bytes()
    handler.before_commit()
    assert orjson.loads(written) == record_to_json(record)
    assert path.read_bytes() == written
    handler.close()


def test_a_jsonl_sync_with_nothing_appended_touches_nothing(tmp_path: Path) -> None:
    """`before_commit` before any record neither creates the file nor fails, also after close."""
    path = tmp_path / "out.jsonl"
    handler = JsonLinesHandler(path)
    handler.before_commit()
    assert not path.exists()
    handler(Record("t", 0, 0, None, b"v"))
    handler.close()
    handler.before_commit()
    assert len(path.read_bytes().splitlines()) == 1


def test_jsonl_relative_paths_are_relative_to_the_base_dir(tmp_path: Path) -> None:
    """`jsonl:out.jsonl` lands beside the config file, not in the working directory."""
    (tmp_path / "sub").mkdir()
    handler = build_handler("jsonl:sub/out.jsonl", base_dir=tmp_path)
    assert isinstance(handler, JsonLinesHandler)
    assert handler.path == tmp_path / "sub" / "out.jsonl"


def test_builtin_targets_build_their_handlers() -> None:
    """`print` and `forward:TOPIC` name the built-in handlers."""
    assert isinstance(build_handler("print"), PrintHandler)
    forward = build_handler("forward:copy", producer_settings={"bootstrap_servers": "h:1"})
    assert isinstance(forward, ForwardHandler)
    assert forward.topic == "copy"


@pytest.mark.parametrize(
    ("target", "producer_settings", "fragment"),
    [
        ("jsonl:", None, "needs a file path"),
        ("forward:", {}, "needs a topic"),
        ("forward:copy", None, "connection settings"),
        ("no_colon_here", None, "expected 'package.module:function'"),
        ("kp_missing_module_xyz:handle", None, "cannot import module 'kp_missing_module_xyz'"),
    ],
)
def test_unusable_targets_are_configuration_errors(
    target: str, producer_settings: dict[str, str] | None, fragment: str
) -> None:
    """Each unusable target is a PERMANENT ConfigurationError naming the target and the fix."""
    with pytest.raises(ConfigurationError) as caught:
        build_handler(target, producer_settings=producer_settings)
    assert f"handler.target {target!r}" in str(caught.value)
    assert fragment in str(caught.value)
    assert classify_exception(caught.value) is ErrorCategory.PERMANENT


@pytest.mark.parametrize(
    ("argument", "fragment"),
    [
        ("absent-directory/out.jsonl", "absent-directory' does not exist: create it or fix"),
        ("a-file/out.jsonl", "a-file' is not a directory"),
        ("a-directory", "a-directory' is not a regular file"),
    ],
)
def test_a_jsonl_path_that_cannot_be_appended_to_is_refused_when_built(
    tmp_path: Path, argument: str, fragment: str
) -> None:
    """A missing directory (not created: it may be a typo) or a directory as the file fails
    at build time, naming the path, and leaves the file system as it was."""
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-directory").mkdir()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigurationError) as caught:
        build_handler(f"jsonl:{argument}", base_dir=tmp_path)
    assert f"handler.target 'jsonl:{argument}'" in str(caught.value)
    assert fragment in str(caught.value)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("existing", [True, False], ids=["file read-only", "directory read-only"])
def test_a_jsonl_path_this_process_may_not_write_is_refused(tmp_path: Path, existing: bool) -> None:
    """A read-only file, or a new file in a read-only directory, fails at build time.

    Root may write past any permission bits, so as root the path's parent is a regular
    file instead: a path nobody can write, refused the same way before anything starts.
    """
    directory = tmp_path / "out"
    directory.mkdir()
    path = directory / "out.jsonl"
    expected = "not writable by this process"
    if os.geteuid() == 0:
        (directory / "plain-file").write_text("")
        path = directory / "plain-file" / "out.jsonl"
        expected = "is not a directory"
    elif existing:
        path.write_text("")
        path.chmod(0o444)
    else:
        directory.chmod(0o555)
    try:
        with pytest.raises(ConfigurationError, match=expected):
            build_handler(f"jsonl:{path}")
        with pytest.raises(OSError):  # and the refusal is real: this path cannot be opened
            path.open("ab").close()
    finally:
        directory.chmod(0o755)


@pytest.mark.parametrize("file_mode", [0o600, 0o640])
def test_a_new_jsonl_file_is_created_with_the_configured_private_mode(
    tmp_path: Path, file_mode: int
) -> None:
    """The output holds record values: created 0600 by default (0640 when configured)."""
    path = tmp_path / "out.jsonl"
    handler = build_handler(f"jsonl:{path}", file_mode=file_mode)
    assert isinstance(handler, JsonLinesHandler)
    handler(Record("t", 0, 0, None, b"v"))
    handler.close()
    assert stat.S_IMODE(path.stat().st_mode) == file_mode & ~_umask()


def test_the_default_jsonl_file_mode_is_0600(tmp_path: Path) -> None:
    """Without a mode, nobody but the owner may read the output."""
    path = tmp_path / "out.jsonl"
    handler = build_handler(f"jsonl:{path}")
    assert isinstance(handler, JsonLinesHandler)
    handler(Record("t", 0, 0, None, b"v"))
    handler.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_mode_beyond_permission_bits_is_refused(tmp_path: Path) -> None:
    """0o1777 is not a file permission mode."""
    with pytest.raises(ValueError, match="file mode"):
        build_handler(f"jsonl:{tmp_path / 'x.jsonl'}", file_mode=0o1777)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user's handler module on sys.path, as PYTHONPATH would put it."""
    name = f"kp_user_handlers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            seen = []

            def handle(record):
                seen.append(record.offset)

            async def handle_async(record):
                seen.append(-record.offset)

            class Handlers:
                @staticmethod
                def nested(record):
                    seen.append(record.partition)

            not_callable = 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.mark.anyio
async def test_user_handlers_load_sync_async_and_dotted(user_module: str) -> None:
    """`module:function`, an async function and `module:Class.method` all load and run."""
    sync = load_handler(f"{user_module}:handle")
    asynchronous = load_handler(f"{user_module}:handle_async")
    nested = load_handler(f"{user_module}:Handlers.nested")
    record = Record("t", 3, 5, None, b"x")
    sync(record)
    await asynchronous(record)
    nested(record)
    module = __import__(user_module)
    assert module.seen == [5, -5, 3]


@pytest.mark.parametrize(
    ("attribute", "fragment"),
    [("missing", "has no attribute 'missing'"), ("not_callable", "is not callable")],
)
def test_a_wrong_attribute_is_named(user_module: str, attribute: str, fragment: str) -> None:
    """A missing or non-callable attribute fails with a message naming it."""
    with pytest.raises(ConfigurationError, match=fragment):
        load_handler(f"{user_module}:{attribute}")


def test_a_module_that_fails_to_import_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception raised while importing the module is named, with its type and text."""
    (tmp_path / "kp_broken_handler_mod.py").write_text("raise RuntimeError('no database')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match="RuntimeError: no database"):
        load_handler("kp_broken_handler_mod:handle")


@settings(max_examples=25)
@given(st.sampled_from(["aclose", "close", None]))
@pytest.mark.anyio
async def test_close_handler_releases_what_the_handler_offers(method: str | None) -> None:
    """`aclose()` is awaited, `close()` is called, a plain function is left alone."""
    calls: list[str] = []

    class Held:
        def __call__(self, record: Record) -> None:
            """A handler doing nothing."""

    held = Held()
    if method == "aclose":

        async def aclose() -> None:
            calls.append("aclose")

        held.aclose = aclose
    elif method == "close":
        held.close = lambda: calls.append("close")
    await close_handler(held)
    assert calls == ([method] if method else [])


def test_a_failed_jsonl_sync_stops_every_later_commit(tmp_path: Path) -> None:
    """After an fsync failed (here a real one: fsync of a pipe is EINVAL), every later
    `before_commit` raises PermanentError naming the file, however the next fsync would go:
    the lines since the last good sync may be lost, so nothing more may be committed."""
    pipe = tmp_path / "out.jsonl"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    handler = JsonLinesHandler(pipe)
    try:
        handler(Record("t", 0, 0, None, b"v"))
        with pytest.raises(OSError) as first:
            handler.before_commit()
        with pytest.raises(
            PermanentError, match=f"an earlier fsync of {str(pipe)!r} failed"
        ) as later:
            handler.before_commit()
        assert later.value.__cause__ is first.value
        assert classify_exception(later.value) is ErrorCategory.PERMANENT
    finally:
        with contextlib.suppress(OSError):
            handler.close()
        os.close(reader)
