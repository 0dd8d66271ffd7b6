"""The attachments handler end to end against the local HTTPS server: files stored under
deterministic names (a local directory and Azurite), refusals before any download, the
most severe failure raised, results forwarded, safe under concurrent calls."""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from attachment_server import AttachmentServer
from attachment_testing import TEST_LIMITS, new_directory
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob.aio import ContainerClient
from azurite_emulator import ACCOUNT_KEY, ACCOUNT_NAME, Azurite

from actors.attachments import AttachmentHandler, BlobStore, Downloader, LocalDirectoryStore
from actors.messages import Record
from core.errors import DownloadError, PermanentError
from core.urls import RefusalRule, UrlPolicy, UrlRefusedError

pytestmark = pytest.mark.anyio


def event(offset: int, **fields: Any) -> Record:
    """A record of topic `docs`, partition 1, carrying `fields` as its JSON value."""
    return Record("docs", 1, offset, b"key", orjson.dumps(fields))


def files_under(root: Path) -> dict[str, bytes]:
    """Every stored file below `root` (staging excluded) by relative path."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if ".staging" not in path.parts:
                found[str(path.relative_to(root))] = path.read_bytes()
    return found


class Collected:
    """A result sink that keeps what it got and counts `before_commit` calls."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.commits = 0

    async def __call__(self, record: Record) -> None:
        self.records.append(record)

    async def before_commit(self) -> None:
        self.commits += 1


@pytest.fixture
async def local_handler(
    policy: UrlPolicy, client_tls: ssl.SSLContext, tmp_path: Path
) -> AsyncIterator[AttachmentHandler]:
    """A handler storing into tmp_path/store, reading `attachment.url` and `more`."""
    handler = AttachmentHandler(
        downloader=Downloader(policy, TEST_LIMITS, verify=client_tls),
        store=LocalDirectoryStore(new_directory(tmp_path / "store")),
        url_fields=["attachment.url", "more"],
        name_prefix="inbox",
        max_parallel_per_event=2,
    )
    try:
        yield handler
    finally:
        await handler.aclose()


async def test_urls_of_an_event_are_stored_under_deterministic_names(
    server: AttachmentServer, local_handler: AttachmentHandler, tmp_path: Path
) -> None:
    """Three URLs from two fields land as <prefix>/<trace id>/<n>-<name>; the result lists them."""
    contents = {name: os.urandom(10_000 + n) for n, name in enumerate(["a.pdf", "b.pdf", "c.pdf"])}
    urls = [server.add_file(name, content) for name, content in contents.items()]
    record = event(7, trace_id="T-1", attachment={"url": urls[0]}, more=urls[1:])
    result = await local_handler(record)
    stored = files_under(tmp_path / "store")
    assert stored == {
        "inbox/T-1/0-a.pdf": contents["a.pdf"],
        "inbox/T-1/1-b.pdf": contents["b.pdf"],
        "inbox/T-1/2-c.pdf": contents["c.pdf"],
    }
    assert result["source"] == {"topic": "docs", "partition": 1, "offset": 7}
    assert [item["sha256"] for item in result["attachments"]] == [
        hashlib.sha256(content).hexdigest() for content in contents.values()
    ]
    assert [item["size"] for item in result["attachments"]] == [10_000, 10_001, 10_002]


async def test_a_redelivered_record_overwrites_instead_of_duplicating(
    server: AttachmentServer, local_handler: AttachmentHandler, tmp_path: Path
) -> None:
    """Handling the same record twice (no trace id) leaves one file per URL, the latest body."""
    url = server.add_file("again.pdf", b"first")
    record = event(11, attachment={"url": url})
    await local_handler(record)
    server.add_file("again.pdf", b"second")
    await local_handler(record)
    assert files_under(tmp_path / "store") == {"inbox/docs/1/11/0-again.pdf": b"second"}


async def test_one_refused_url_refuses_the_event_before_anything_is_fetched(
    server: AttachmentServer, local_handler: AttachmentHandler, tmp_path: Path
) -> None:
    """A good URL next to a metadata URL: nothing is requested or stored, the rule is named."""
    good = server.add_file("fine.pdf", b"fine")
    record = event(3, more=[good, "https://169.254.169.254/latest/meta-data/iam"])
    with pytest.raises(UrlRefusedError) as caught:
        await local_handler(record)
    assert caught.value.rule is RefusalRule.FORBIDDEN_ADDRESS
    assert "forbidden_address" in str(caught.value)
    assert server.requests == []
    assert files_under(tmp_path / "store") == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"attachment": {"url": 5}}', "not a URL string"),
        (b'{"other": "x"}', "has no URL"),
        (None, "tombstone"),
    ],
)
async def test_bad_events_are_permanent(
    local_handler: AttachmentHandler, value: bytes | None, problem: str
) -> None:
    """Events that are not JSON objects, hold non-strings or name no URL are PERMANENT."""
    with pytest.raises(PermanentError, match=problem):
        await local_handler(Record("docs", 0, 0, None, value))


async def test_the_most_severe_failure_is_raised_alone(
    server: AttachmentServer, local_handler: AttachmentHandler
) -> None:
    """With a 503 and a 404 in one event, the PERMANENT 404 is raised, not a group."""
    record = event(5, more=[server.url("status/503"), server.url("status/404")])
    with pytest.raises(DownloadError) as caught:
        await local_handler(record)
    assert caught.value.status_code == 404


async def test_concurrent_calls_store_every_record(
    server: AttachmentServer, local_handler: AttachmentHandler, tmp_path: Path
) -> None:
    """Forty records handled at once all land, each under its own name with its own bytes."""
    bodies = {offset: os.urandom(5000) for offset in range(40)}
    records = [
        event(offset, attachment={"url": server.add_file(f"f{offset}.bin", body)})
        for offset, body in bodies.items()
    ]
    async with anyio.create_task_group() as tasks:
        for record in records:
            tasks.start_soon(local_handler, record)
    stored = files_under(tmp_path / "store")
    assert stored == {f"inbox/docs/1/{o}/0-f{o}.bin": body for o, body in bodies.items()}


async def test_results_go_to_the_sink_and_before_commit_waits_for_it(
    server: AttachmentServer, policy: UrlPolicy, client_tls: ssl.SSLContext, tmp_path: Path
) -> None:
    """The result event reaches the sink as a record keyed like the source; before_commit
    and aclose reach the sink too."""
    sink = Collected()
    handler = AttachmentHandler(
        downloader=Downloader(policy, TEST_LIMITS, verify=client_tls),
        store=LocalDirectoryStore(new_directory(tmp_path / "store")),
        url_fields=["url"],
        result_sink=sink,
    )
    try:
        await handler(event(9, url=server.add_file("r.pdf", b"result")))
        await handler.before_commit()
    finally:
        await handler.aclose()
    assert len(sink.records) == 1
    sent = sink.records[0]
    assert sent.key == b"key"
    body = orjson.loads(sent.value or b"")
    assert body["attachments"][0]["name"] == "docs/1/9/0-r.pdf"
    assert body["attachments"][0]["sha256"] == hashlib.sha256(b"result").hexdigest()
    assert sink.commits == 1


async def test_attachments_land_in_blob_storage_on_azurite(
    server: AttachmentServer,
    policy: UrlPolicy,
    client_tls: ssl.SSLContext,
    azurite: Azurite,
    blob_container: ContainerClient,
    tmp_path: Path,
) -> None:
    """Through the real azure-storage-blob client: deterministic blob names, overwritten on
    redelivery, bodies and hashes intact."""
    handler = AttachmentHandler(
        downloader=Downloader(policy, TEST_LIMITS, verify=client_tls),
        store=BlobStore(
            azurite.account_url,
            blob_container.container_name,
            AzureNamedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY),
            staging_directory=tmp_path / "staging",
        ),
        url_fields=["urls"],
        name_prefix="Files/inbox",
    )
    body = os.urandom(150_000)
    record = event(21, trace_id="abc/../x", urls=[server.add_file("scan.pdf", body)])
    try:
        await handler(record)
        await handler(record)
    finally:
        await handler.aclose()
    names = [blob.name async for blob in blob_container.list_blobs()]
    assert names == ["Files/inbox/abc_.._x/0-scan.pdf"]
    downloaded = await blob_container.get_blob_client(names[0]).download_blob()
    assert await downloaded.readall() == body
