"""The download stage against a real local HTTPS server: files land hashed on disk,
every refused hop is refused, failures are classified, the address is pinned."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import time
import urllib.parse
from email.utils import formatdate
from pathlib import Path

import pytest
from attachment_server import AttachmentServer
from attachment_testing import TEST_LIMITS, ScriptedResolver, make_policy

from actors.attachments.downloader import Downloader
from core.errors import DownloadError, classify_exception
from core.types import ErrorCategory
from core.urls import RefusalRule, UrlRefusedError

pytestmark = pytest.mark.anyio


def leftovers(directory: Path) -> list[str]:
    """What is left in `directory`."""
    return sorted(os.listdir(directory))


async def test_a_file_lands_in_the_spool_with_its_hash(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path
) -> None:
    """A served file is written to a temporary file with its size, SHA-256 and content type."""
    content = os.urandom(300_000)
    url = server.add_file("report.pdf", content)
    got = await downloader.download(url, spool_dir)
    assert got.path.read_bytes() == content
    assert got.size == len(content)
    assert got.sha256 == hashlib.sha256(content).hexdigest()
    assert got.content_type == "application/pdf"
    assert got.path.parent == spool_dir


async def test_host_header_and_sni_carry_the_host_name_while_the_address_is_pinned(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path, resolver: ScriptedResolver
) -> None:
    """The request reaches ::1 but the Host header and TLS server name are the URL's host."""
    url = server.add_file("a.txt", b"hello", "text/plain")
    await downloader.download(url, spool_dir)
    seen = server.requests[-1]
    assert seen.host_header == f"files.test:{server.port}"
    assert seen.server_name == "files.test"
    assert resolver.lookups == ["files.test"]


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1:{port}/files/a.txt",
        "https://[::ffff:127.0.0.1]:{port}/files/a.txt",
        "https://169.254.169.254/latest/meta-data/",
        "https://168.63.129.16/machine?comp=goalstate",
    ],
)
async def test_redirects_to_internal_addresses_are_refused(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path, target: str
) -> None:
    """A redirect to loopback, mapped loopback, metadata or WireServer is refused by address."""
    server.add_file("a.txt", b"hello", "text/plain")
    location = target.format(port=server.port)
    url = server.url("redirect?to=" + urllib.parse.quote(location, safe=""))
    with pytest.raises(UrlRefusedError) as caught:
        await downloader.download(url, spool_dir)
    assert caught.value.rule is RefusalRule.FORBIDDEN_ADDRESS
    assert classify_exception(caught.value) is ErrorCategory.PERMANENT
    assert leftovers(spool_dir) == []


async def test_a_redirect_to_an_allowed_host_is_followed(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path
) -> None:
    """A redirect to another allowed host is followed, and the result names where it came from."""
    server.add_file("b.txt", b"moved", "text/plain")
    target = server.url("files/b.txt", host="other.files.test")
    got = await downloader.download(
        server.url("redirect?to=" + urllib.parse.quote(target, safe="")), spool_dir
    )
    assert got.path.read_bytes() == b"moved"
    assert got.url == target


async def test_too_many_redirects_and_a_missing_location_are_permanent(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path
) -> None:
    """Five hops are followed, six are refused; a redirect without Location is refused."""
    got = await downloader.download(server.url("chain/5"), spool_dir)
    assert got.path.read_bytes() == b"end of chain"
    for path in ("chain/6", "no-location"):
        with pytest.raises(DownloadError) as caught:
            await downloader.download(server.url(path), spool_dir)
        assert caught.value.category is ErrorCategory.PERMANENT


async def test_rebinding_cannot_swap_the_address(
    server: AttachmentServer,
    downloader: Downloader,
    spool_dir: Path,
    resolver: ScriptedResolver,
    client_tls: ssl.SSLContext,
) -> None:
    """A name that answers ::1 then 10.0.0.1 is looked up once per connection: the first
    download dials the checked address, the next connection is refused."""
    resolver.answers["rebind.test"] = [["::1"], ["10.0.0.1"]]
    server.add_file("r.txt", b"first answer", "text/plain")
    got = await downloader.download(server.url("files/r.txt", host="rebind.test"), spool_dir)
    assert got.path.read_bytes() == b"first answer"
    assert resolver.lookups.count("rebind.test") == 1
    fresh = Downloader(downloader.policy, TEST_LIMITS, verify=client_tls)
    try:
        with pytest.raises(UrlRefusedError) as caught:
            await fresh.download(server.url("files/r.txt", host="rebind.test"), spool_dir)
    finally:
        await fresh.aclose()
    assert caught.value.rule is RefusalRule.FORBIDDEN_ADDRESS
    assert caught.value.context["address"] == "10.0.0.1"
    assert resolver.lookups.count("rebind.test") == 2


async def test_an_endless_body_is_cut_at_the_cap(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path
) -> None:
    """A body without an end is refused once it passes max_bytes; nothing is left behind."""
    with pytest.raises(DownloadError) as caught:
        await downloader.download(server.url("endless"), spool_dir)
    assert caught.value.category is ErrorCategory.PERMANENT
    assert "max_bytes" in str(caught.value)
    assert leftovers(spool_dir) == []


async def test_a_declared_oversize_body_is_refused_before_reading_it(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path
) -> None:
    """A Content-Length above the cap is refused at once."""
    with pytest.raises(DownloadError, match="Content-Length") as caught:
        await downloader.download(server.url("huge-declared"), spool_dir)
    assert caught.value.category is ErrorCategory.PERMANENT


async def test_a_slow_body_times_out_as_transient(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path
) -> None:
    """A body that stalls longer than read_timeout_s fails TRANSIENT; nothing is left behind."""
    server.slow_seconds = 3.0
    with pytest.raises(DownloadError, match="timed out") as caught:
        await downloader.download(server.url("slow"), spool_dir)
    assert caught.value.category is ErrorCategory.TRANSIENT
    assert caught.value.status_code is None
    assert leftovers(spool_dir) == []


@pytest.mark.parametrize(
    ("path", "category", "retry_after"),
    [
        ("status/404", ErrorCategory.PERMANENT, None),
        ("status/410", ErrorCategory.PERMANENT, None),
        ("status/403", ErrorCategory.PERMANENT, None),
        ("status/429?retry_after=7", ErrorCategory.TRANSIENT, 7.0),
        ("status/503?retry_after=12", ErrorCategory.TRANSIENT, 12.0),
        ("status/503", ErrorCategory.TRANSIENT, None),
        ("status/500", ErrorCategory.TRANSIENT, None),
        ("status/204", ErrorCategory.PERMANENT, None),
    ],
)
async def test_statuses_are_classified_with_their_status_and_retry_after(
    server: AttachmentServer,
    downloader: Downloader,
    spool_dir: Path,
    path: str,
    category: ErrorCategory,
    retry_after: float | None,
) -> None:
    """404/410/403 are PERMANENT; 429/503/500 TRANSIENT with Retry-After; all DownloadError."""
    with pytest.raises(DownloadError) as caught:
        await downloader.download(server.url(path), spool_dir)
    error = caught.value
    assert error.status_code == int(path.split("/")[1].split("?")[0])
    assert error.category is category
    assert error.retry_after == retry_after


async def test_a_retry_after_date_is_honoured(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path
) -> None:
    """Retry-After as an HTTP date becomes the seconds until then (capped)."""
    when = formatdate(time.time() + 120, usegmt=True)
    with pytest.raises(DownloadError) as caught:
        await downloader.download(
            server.url("status/429?retry_after=" + urllib.parse.quote(when)), spool_dir
        )
    assert caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 121


async def test_connection_refused_is_transient(
    server: AttachmentServer,
    resolver: ScriptedResolver,
    spool_dir: Path,
    client_tls: ssl.SSLContext,
) -> None:
    """A port nobody listens on fails TRANSIENT (a connection error, no status)."""
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        free_port = probe.getsockname()[1]
    closed = Downloader(
        make_policy(server, resolver, port=free_port), TEST_LIMITS, verify=client_tls
    )
    try:
        with pytest.raises(DownloadError) as caught:
            await closed.download(f"https://files.test:{free_port}/x", spool_dir)
    finally:
        await closed.aclose()
    assert caught.value.category is ErrorCategory.TRANSIENT
    assert caught.value.status_code is None
