"""The attachments handler: the URLs an event names are downloaded, stored, and reported.

For each record the handler

1. parses the value as a JSON object (anything else is PERMANENT: the record can never
   be handled, so it is dead-lettered);
2. reads the URLs from the configured fields (dotted paths such as `attachment.url`; a
   field may hold a string or a list of strings; a missing field is skipped; a value
   of another type is PERMANENT);
3. checks every URL with the policy before downloading anything, so an event with one
   refused URL stores nothing and goes to the dead-letter topic naming the rule;
4. downloads and stores the URLs concurrently (at most `max_parallel_per_event` per
   event and `max_parallel_downloads` across all events), under the deterministic
   names of `naming`, so a redelivered record overwrites what it stored before;
5. returns a small JSON-ready result (stored location, size, SHA-256, content type,
   source topic/partition/offset), and hands it, as a record, to `result_sink` when one
   is configured (e.g. the `forward:` handler, which produces it to a topic).

When several URLs of one event fail, the most severe failure is raised (PERMANENT
before AUTH before CIRCUIT_OPEN before TRANSIENT), alone, so the dead letter names the
rule that refused it. A PERMANENT failure cancels the event's other downloads (nothing
can save the event, and nothing outranks it); after any other failure the rest run to
their end, so a permanent failure among them is not hidden by a transient one.

The handler is safe to call concurrently (it keeps no per-record state). It buffers
nothing itself; `before_commit` waits for the result sink's acknowledgements, so a
record is committed only after its result event is durable.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from actors.attachments.downloader import Downloader
from actors.attachments.naming import attachment_name
from actors.attachments.stores import AttachmentStore
from actors.messages import Record
from core.errors import PermanentError, classify_exception, most_severe
from core.resilience import CircuitBreaker
from core.types import ErrorCategory

__all__ = ["AttachmentHandler", "ResultSink", "StoredAttachment"]

ResultSink = Callable[[Record], Awaitable[object] | object]
"""Where result events go: any handler (a record in, e.g. the `forward:` handler)."""


@dataclass(frozen=True, slots=True)
class StoredAttachment:
    """One stored attachment, as reported."""

    url: str
    name: str
    stored: str
    size: int
    sha256: str
    content_type: str | None


class AttachmentHandler:
    """Downloads and stores the attachments named in each record (see the module docstring)."""

    def __init__(
        self,
        *,
        downloader: Downloader,
        store: AttachmentStore,
        url_fields: Sequence[str],
        name_prefix: str = "",
        trace_id_field: str | None = "trace_id",
        skip_events_without_urls: bool = False,
        max_urls_per_event: int = 20,
        max_parallel_per_event: int = 4,
        max_parallel_downloads: int = 64,
        result_sink: ResultSink | None = None,
    ) -> None:
        if not url_fields:
            raise ValueError("url_fields must name at least one field")
        self.downloader = downloader
        self.store = store
        self.url_fields = tuple(url_fields)
        self.name_prefix = name_prefix
        self.trace_id_field = trace_id_field
        self.skip_events_without_urls = skip_events_without_urls
        self.max_urls_per_event = max_urls_per_event
        self.max_parallel_per_event = max_parallel_per_event
        self._downloads = anyio.CapacityLimiter(max_parallel_downloads)
        self.result_sink = result_sink

    def __repr__(self) -> str:
        return f"AttachmentHandler(fields={list(self.url_fields)}, store={self.store!r})"

    async def __call__(self, record: Record) -> dict[str, Any]:
        """Handle one record; returns the result event (also sent to the result sink)."""
        event = _json_object(record)
        urls = self._urls_of(event, record)
        for url in urls:  # every URL is judged before anything is fetched
            self.downloader.policy.check_url(url)
        event_id = self._event_id(event)
        stored: list[StoredAttachment | None] = [None] * len(urls)
        failures: list[Exception] = []
        per_event = anyio.Semaphore(self.max_parallel_per_event)

        async def fetch(index: int, url: str) -> None:
            try:
                async with per_event, self._downloads:
                    stored[index] = await self._fetch_and_store(record, event_id, index, url)
            except Exception as exc:
                failures.append(exc)
                if classify_exception(exc) is ErrorCategory.PERMANENT:
                    tasks.cancel_scope.cancel()  # nothing can save the event now

        async with anyio.create_task_group() as tasks:
            for index, url in enumerate(urls):
                tasks.start_soon(fetch, index, url)
        if failures:
            raise _most_severe(failures)
        result = _result_event(record, event_id, [item for item in stored if item is not None])
        if self.result_sink is not None:
            await self._emit(record, result)
        return result

    async def before_commit(self) -> None:
        """Wait until the result sink holds every result handed to it (if it buffers)."""
        hook = getattr(self.result_sink, "before_commit", None)
        if hook is not None:
            outcome = hook()
            if inspect.isawaitable(outcome):
                await outcome

    async def aclose(self) -> None:
        """Close the connection pool, the store's client and the result sink."""
        await self.downloader.aclose()
        await self.store.aclose()
        closer = getattr(self.result_sink, "aclose", None)
        if closer is not None:
            outcome = closer()
            if inspect.isawaitable(outcome):
                await outcome

    def breakers(self) -> list[CircuitBreaker]:
        """The breakers that exist now: the store's and every download host's."""
        own = [self.store.breaker] if self.store.breaker is not None else []
        return own + self.downloader.breakers.breakers()

    def on_new_breaker(self, listener: Callable[[CircuitBreaker], object]) -> None:
        """Call `listener(breaker)` for the store's breaker and every host breaker, now
        and whenever a new host's breaker is created (from the creating task's thread)."""
        if self.store.breaker is not None:
            listener(self.store.breaker)
        self.downloader.breakers.on_new_breaker(listener)

    async def _fetch_and_store(
        self, record: Record, event_id: str | None, index: int, url: str
    ) -> StoredAttachment:
        name = attachment_name(
            self.name_prefix,
            event_id=event_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            index=index,
            url=url,
        )
        downloaded = await self.downloader.download(url, self.store.staging_directory)
        try:
            location = await self.store.put(
                downloaded.path,
                name,
                content_type=downloaded.content_type,
                sha256=downloaded.sha256,
            )
        finally:
            await anyio.Path(downloaded.path).unlink(missing_ok=True)
        return StoredAttachment(
            url=downloaded.url,
            name=name,
            stored=location,
            size=downloaded.size,
            sha256=downloaded.sha256,
            content_type=downloaded.content_type,
        )

    def _urls_of(self, event: dict[str, Any], record: Record) -> list[str]:
        urls: list[str] = []
        for field in self.url_fields:
            value = _lookup(event, field)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            for item in values:
                if not isinstance(item, str):
                    raise PermanentError(
                        f"field {field!r} of {_where(record)} holds {type(item).__name__}, "
                        "not a URL string",
                        context={"field": field},
                    )
                urls.append(item)
        if len(urls) > self.max_urls_per_event:
            raise PermanentError(
                f"{_where(record)} names {len(urls)} URLs, more than max_urls_per_event "
                f"({self.max_urls_per_event})"
            )
        if not urls and not self.skip_events_without_urls:
            raise PermanentError(
                f"{_where(record)} has no URL in the fields {list(self.url_fields)}",
                context={"fields": list(self.url_fields)},
            )
        return urls

    def _event_id(self, event: dict[str, Any]) -> str | None:
        if not self.trace_id_field:
            return None
        value = _lookup(event, self.trace_id_field)
        return str(value) if isinstance(value, str | int) and str(value) else None

    async def _emit(self, record: Record, result: dict[str, Any]) -> None:
        assert self.result_sink is not None
        outcome = self.result_sink(
            Record(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                orjson.dumps(result),
                (),
                record.timestamp,
            )
        )
        if inspect.isawaitable(outcome):
            await outcome


def _json_object(record: Record) -> dict[str, Any]:
    if record.value is None:
        raise PermanentError(f"{_where(record)} has no value (a tombstone), not a JSON event")
    try:
        event = orjson.loads(record.value)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(f"{_where(record)} is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise PermanentError(f"{_where(record)} is JSON {type(event).__name__}, not an object")
    return event


def _lookup(event: dict[str, Any], dotted: str) -> Any:
    """The value at `a.b.c` in nested objects, None if any step is missing."""
    value: Any = event
    for step in dotted.split("."):
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def _where(record: Record) -> str:
    return f"record {record.topic}[{record.partition}]@{record.offset}"


def _most_severe(failures: list[Exception]) -> Exception:
    worst = most_severe([classify_exception(failure) for failure in failures])
    return next(failure for failure in failures if classify_exception(failure) is worst)


def _result_event(
    record: Record, event_id: str | None, stored: list[StoredAttachment]
) -> dict[str, Any]:
    return {
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "trace_id": event_id,
        "attachments": [
            {
                "url": item.url,
                "name": item.name,
                "stored": item.stored,
                "size": item.size,
                "sha256": item.sha256,
                "content_type": item.content_type,
            }
            for item in stored
        ],
    }
