"""Built-in record handlers, and loading the user's handler by its import path.

`handler.target` in the configuration names one of:

    print              one line per record on stdout: where it came from, key and value
    jsonl:PATH         append one JSON object per record to PATH (created if missing, with
                       permissions 0600 unless told otherwise; its directory must exist
                       and be writable)
    forward:TOPIC      produce the record to TOPIC (acks=all); acknowledged before each commit
    package.module:fn  your own callable, sync or async, given an `actors.messages.Record`

A record's offset may be committed once its handler returned (at-least-once), so a
handler that buffers makes the record durable in its `before_commit()`, which the
consumer awaits before every commit (`print` flushes each line instead): `jsonl`
writes the line to the file at once (readers see it) and fsyncs there; `forward` hands
the record to a batching producer and waits there for the acknowledgements. So a
committed record is never missing from the file or the target topic, and the cost is
paid once per commit rather than once per record.

A target that cannot be loaded raises `ConfigurationError` naming the target and what is
wrong, before anything starts (the CLI exits 2 on it). Handlers that hold resources
(the `jsonl` file, the `forward` producer) are released by `close_handler`, which the
wiring calls after the consumer stopped for good.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import os
import sys
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple, TextIO, cast

import anyio
import anyio.to_thread
import orjson
from aiokafka import AIOKafkaProducer

from actors._file_mode import DEFAULT_FILE_MODE, check_file_mode, open_for_append
from actors.consumer.batches import BatchHandler
from actors.consumer.deliveries import delivery_failure
from actors.consumer.handler_calls import Handler
from actors.messages import Record
from core.errors import ConfigurationError, PermanentError
from core.logging.error_text import error_text

__all__ = [
    "ForwardHandler",
    "JsonLinesHandler",
    "PrintHandler",
    "build_handler",
    "close_handler",
    "load_handler",
    "record_to_json",
]

JsonBytes = str | dict[str, str] | None
"""Bytes as JSON: the text when they are UTF-8, else `{"base64": ...}`; None stays null."""


def _bytes_to_json(data: bytes | None) -> JsonBytes:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def record_to_json(record: Record) -> dict[str, Any]:
    """The record as a JSON-ready dict; key, value and header values as `JsonBytes`."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": _bytes_to_json(record.key),
        "value": _bytes_to_json(record.value),
        "headers": [[name, _bytes_to_json(value)] for name, value in record.headers],
    }


class PrintHandler:
    """Prints `topic[partition]@offset key=... value=...` (JSON-quoted), one line per record."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, record: Record) -> None:
        """Write the record's line and flush."""
        key = orjson.dumps(_bytes_to_json(record.key)).decode()
        value = orjson.dumps(_bytes_to_json(record.value)).decode()
        line = f"{record.topic}[{record.partition}]@{record.offset} key={key} value={value}\n"
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            stream.write(line)
            stream.flush()


class JsonLinesHandler:
    """Appends `record_to_json(record)` as one line to `path`; fsyncs in `before_commit`.

    A plain function of the record, so the consumer calls it in a worker thread, one
    trip per run of records: the disk never stalls the event loop. A missing file is
    created with permissions `file_mode` (default 0600: it holds record values; see
    actors._file_mode).
    """

    def __init__(self, path: Path, *, file_mode: int = DEFAULT_FILE_MODE) -> None:
        self.path = path
        self.file_mode = check_file_mode(file_mode)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._unsynced = False
        self._sync_failure: OSError | None = None

    def __repr__(self) -> str:
        return f"JsonLinesHandler({str(self.path)!r})"

    def __call__(self, record: Record) -> None:
        """Append the record's line and hand it to the OS (visible to readers, not yet synced)."""
        line = orjson.dumps(record_to_json(record)) + b"\n"
        with self._lock:
            file = self._open()
            try:
                file.write(line)
                file.flush()
            except BaseException:
                self._file = None
                file.close()  # the retry starts from a freshly opened file
                raise
            self._unsynced = True

    def before_commit(self) -> None:
        """Fsync what was appended since the last call (the consumer commits after this).

        A failed fsync is final for this handler: the kernel may have dropped the lines
        and a later fsync would report success, so every later call raises PermanentError
        (the process stops uncommitted; after a restart the records are delivered again)."""
        with self._lock:
            if self._sync_failure is not None:
                raise PermanentError(
                    f"an earlier fsync of {str(self.path)!r} failed "
                    f"({error_text(self._sync_failure)}); "
                    "lines since the last good sync may be lost, so nothing more is committed"
                ) from self._sync_failure
            if not self._unsynced:
                return
            try:
                os.fsync(self._open().fileno())  # syncs the file, whichever descriptor wrote
            except OSError as exc:
                self._sync_failure = exc
                raise
            self._unsynced = False

    def close(self) -> None:
        """Sync and close the file; a later record opens it again."""
        with self._lock:
            file, self._file = self._file, None
            self._unsynced = False
        if file is not None:
            with file:
                os.fsync(file.fileno())

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self._file = open_for_append(self.path, self.file_mode, text=False)
        return self._file


class ForwardHandler:
    """Produces each record (key, value, headers) to `topic`; acknowledged before each commit.

    A call hands the record to the producer, which batches, and returns; `before_commit`
    waits until the broker acknowledged (acks=all) every record handed over before it
    was called, so the consumer commits only what the target topic holds, at the
    producer's pace rather than one round trip per record. A record whose delivery
    failed is sent again by the next `before_commit`, which meanwhile raises the
    delivery's error (aiokafka's, classified by `core.errors`: a broker away is
    TRANSIENT, and the consumer tries the commit again later). Sent again, such a record
    may land after records that followed it. A record is held only until it was
    acknowledged, so memory is bounded by what the producer has in flight.

    The producer starts on the first record, so building the handler never touches the
    network; a failed start is tried again with the next call.

    Size: built with the consumer's producer settings (actors.consumer.client_config),
    the producer's request limit is at least the consumer's fetch limit plus room for
    headers, so a record the consumer fetched is never refused by the producer itself.
    A record larger still (Kafka delivers a single record above the fetch limit) is
    refused by `send` in the call, which the consumer treats as PERMANENT: it is
    dead-lettered, cut to fit if need be. A target topic whose broker limit is below the
    source's refuses in `before_commit`, as above: give the target the source's limit.
    """

    def __init__(self, topic: str, producer_settings: Mapping[str, Any]) -> None:
        self.topic = topic
        self._settings = {**producer_settings, "acks": "all"}
        self._producer: AIOKafkaProducer | None = None
        self._starting = anyio.Lock()
        self._sent = 0
        self._in_flight: deque[_Delivery] = deque()
        """Records handed to the producer and not yet settled here, in the order handed over."""
        self._failed: deque[_Delivery] = deque()
        """Deliveries that failed, in the order handed over: `before_commit` sends their
        records again."""

    def __repr__(self) -> str:
        return f"ForwardHandler({self.topic!r})"

    async def __call__(self, record: Record) -> None:
        """Hand the record to the producer (waiting only while its buffer is full)."""
        await self._send(await self._started(), record)
        in_flight = self._in_flight
        while in_flight and in_flight[0].delivery.done():  # settled: keep only the failed
            settled = in_flight.popleft()
            if self._failure(settled.delivery) is not None:
                self._failed.append(settled)

    async def before_commit(self) -> None:
        """Return once every record handed over so far is acknowledged; raise the first
        delivery error otherwise (those records are sent again by the next call). A
        delivery the broker refuses for good (PERMANENT: not authorised, too large for
        the broker) stops the consumer and, through the supervisor, the process: a record
        already handed over cannot be dead-lettered by the consumer.

        Cancelled (the commit's deadline), it leaves every record tracked as it was."""
        if self._failed:
            producer = await self._started()
            while self._failed:
                await self._send(producer, self._failed[0].record)
                self._failed.popleft()
        if not self._in_flight:
            return
        last = self._in_flight[-1].number
        await asyncio.wait([sent.delivery for sent in self._in_flight])
        while self._in_flight and self._in_flight[0].number <= last:
            sent = self._in_flight.popleft()
            if self._failure(sent.delivery) is not None:
                self._failed.append(sent)
        # Including those a call moved to `_failed` while this one waited.
        failed = [sent for sent in self._failed if sent.number <= last]
        if failed:
            raise cast(BaseException, self._failure(failed[0].delivery))

    async def aclose(self) -> None:
        """Stop the producer; what it still held was never committed, so it is delivered
        to the handler again by the next consumer of the source."""
        producer, self._producer = self._producer, None
        self._in_flight.clear()
        self._failed.clear()
        if producer is not None:
            await producer.stop()

    def _failure(self, delivery: asyncio.Future[Any]) -> BaseException | None:
        """Why a settled delivery failed, None if it was acknowledged."""
        return delivery_failure(delivery, self.topic)

    async def _send(self, producer: AIOKafkaProducer, record: Record) -> None:
        delivery = await producer.send(
            self.topic, record.value, key=record.key, headers=list(record.headers)
        )
        self._sent += 1
        self._in_flight.append(_Delivery(self._sent, record, delivery))

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(**self._settings)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer


class _Delivery(NamedTuple):
    """The `number`th record handed to the producer, and its delivery (a future)."""

    number: int
    record: Record
    delivery: asyncio.Future[Any]


def build_handler(
    target: str,
    *,
    producer_settings: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
    file_mode: int = DEFAULT_FILE_MODE,
) -> Handler:
    """The handler `target` names (see the module docstring).

    `producer_settings` are `AIOKafkaProducer` arguments (connection and security) for
    `forward:`; a relative `jsonl:` path is relative to `base_dir` (default: the
    working directory); a `jsonl:` file is created with permissions `file_mode`.
    """
    kind, _, argument = target.partition(":")
    if target == "print":
        return PrintHandler()
    if kind == "jsonl":
        if not argument:
            raise _bad(target, "'jsonl:' needs a file path, e.g. 'jsonl:handled.jsonl'")
        path = Path(argument).expanduser()
        path = path if path.is_absolute() else (base_dir or Path.cwd()) / path
        _require_appendable(target, path)
        return JsonLinesHandler(path, file_mode=file_mode)
    if kind == "forward":
        if not argument:
            raise _bad(target, "'forward:' needs a topic, e.g. 'forward:events.copy'")
        if producer_settings is None:
            raise _bad(target, "forwarding needs the Kafka connection settings")
        return ForwardHandler(argument, producer_settings)
    return load_handler(target)


def load_handler(target: str) -> Handler:
    """Import `package.module:function` (the attribute may be dotted) and check it is callable."""
    module_name, colon, attribute = target.partition(":")
    if not (module_name and colon and attribute):
        raise _bad(target, "expected 'package.module:function'")
    try:
        found: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _bad(
            target,
            f"cannot import module {module_name!r}: {error_text(exc)} "
            "(install it in this environment or put it on PYTHONPATH)",
        ) from None
    except Exception as exc:
        raise _bad(
            target,
            f"importing module {module_name!r} failed: {type(exc).__name__}: {error_text(exc)}",
        ) from exc
    for name in attribute.split("."):
        if not hasattr(found, name):
            raise _bad(target, f"{module_name!r} has no attribute {attribute!r}")
        found = getattr(found, name)
    if not callable(found):
        raise _bad(target, f"{attribute!r} is not callable (it is a {type(found).__name__})")
    handler: Handler = found
    return handler


async def close_handler(handler: Handler | BatchHandler) -> None:
    """Release what the handler holds: awaits `aclose()`, or calls `close()`, if it has one."""
    aclose = getattr(handler, "aclose", None)
    if callable(aclose):
        result = aclose()
        if inspect.isawaitable(result):
            await result
        return
    close = getattr(handler, "close", None)
    if callable(close):
        await anyio.to_thread.run_sync(close)


def _require_appendable(target: str, path: Path) -> None:
    """Refuse a `jsonl:` file this process could never append to, before anything starts.

    A missing directory is not created: a typo in the path would otherwise silently
    send the records somewhere nobody looks.
    """
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        raise _bad(target, f"{str(directory)!r} is not a directory")
    if not directory.is_dir():
        raise _bad(
            target, f"directory {str(directory)!r} does not exist: create it or fix the path"
        )
    if path.exists():
        if not path.is_file():
            raise _bad(target, f"{str(path)!r} is not a regular file")
        if not os.access(path, os.W_OK):
            raise _bad(target, f"{str(path)!r} is not writable by this process")
    elif not os.access(directory, os.W_OK | os.X_OK):
        raise _bad(target, f"directory {str(directory)!r} is not writable by this process")


def _bad(target: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"handler.target {target!r}: {problem}", context={"target": target})
