"""A breaker per download host: a dead host opens its own breaker (CircuitOpenError, which
pauses the consumer), permanent failures do not count, monitors hear of every breaker."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from attachment_server import AttachmentServer
from attachment_testing import TEST_LIMITS, ScriptedResolver

from actors.attachments import DOWNLOAD_HOST_CIRCUIT_CONFIG, Downloader, HostBreakers
from actors.attachments.host_breakers import OVERFLOW_BREAKER_NAME
from core.errors import CircuitOpenError, DownloadError, classify_exception
from core.resilience import CircuitBreaker, CircuitState
from core.types import ErrorCategory
from core.urls import UrlPolicy

pytestmark = pytest.mark.anyio


def free_ipv6_port() -> int:
    """A ::1 port nobody listens on."""
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        return int(probe.getsockname()[1])


async def test_a_dead_host_opens_its_breaker_and_others_keep_working(
    server: AttachmentServer,
    resolver: ScriptedResolver,
    spool_dir: Path,
    client_tls: ssl.SSLContext,
) -> None:
    """Four refused connections fail TRANSIENT; the fifth opens the host's breaker and is
    reported as CircuitOpenError (so the consumer pauses at once), as is every later call;
    another host still downloads."""
    dead_port = free_ipv6_port()
    policy = UrlPolicy(
        allowed_domain_suffixes=["files.test"],
        allowed_ports=[dead_port, server.port],
        trusted_networks=[ipaddress.ip_network("::1/128")],
        resolver=resolver,
    )
    downloader = Downloader(policy, TEST_LIMITS, verify=client_tls)
    dead = f"https://other.files.test:{dead_port}/x"
    try:
        for _ in range(DOWNLOAD_HOST_CIRCUIT_CONFIG.failure_threshold - 1):
            with pytest.raises(DownloadError) as failed:
                await downloader.download(dead, spool_dir)
            assert failed.value.category is ErrorCategory.TRANSIENT
        with pytest.raises(CircuitOpenError) as opened:
            await downloader.download(dead, spool_dir)
        with pytest.raises(CircuitOpenError) as caught:
            await downloader.download(dead, spool_dir)
        alive = await downloader.download(server.add_file("ok.txt", b"ok"), spool_dir)
    finally:
        await downloader.aclose()
    assert isinstance(opened.value.__cause__, DownloadError)
    assert classify_exception(caught.value) is ErrorCategory.CIRCUIT_OPEN
    assert caught.value.breaker_name == "download:other.files.test"
    assert alive.size == 2


async def test_permanent_failures_do_not_open_the_breaker(
    server: AttachmentServer, downloader: Downloader, spool_dir: Path
) -> None:
    """Ten 404s in a row leave the host's breaker closed: the host is healthy."""
    for _ in range(10):
        with pytest.raises(DownloadError):
            await downloader.download(server.url("status/404"), spool_dir)
    assert downloader.breakers.for_host("files.test").state is CircuitState.CLOSED


def test_monitors_hear_of_existing_and_new_breakers() -> None:
    """`on_new_breaker` reports breakers that exist and each one created later, once."""
    breakers = HostBreakers()
    first = breakers.for_host("a.example")
    heard: list[CircuitBreaker] = []
    breakers.on_new_breaker(heard.append)
    second = breakers.for_host("b.example")
    breakers.for_host("a.example")
    assert heard == [first, second]
    assert [b.name for b in heard] == ["download:a.example", "download:b.example"]


def test_hosts_beyond_the_limit_share_one_breaker() -> None:
    """Past `max_hosts`, new hosts share the overflow breaker, so memory stays bounded."""
    breakers = HostBreakers(max_hosts=3)
    for n in range(10):
        breakers.for_host(f"h{n}.example")
    names = sorted(b.name for b in breakers.breakers())
    assert len(names) == 4
    assert OVERFLOW_BREAKER_NAME in names
    assert breakers.for_host("h9.example").name == OVERFLOW_BREAKER_NAME
