"""Helpers shared by the attachment tests and the download benchmark: scripted name
resolution, the test policy (trusting ::1 only) and short download limits."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from pathlib import Path

from attachment_server import AttachmentServer

from actors.attachments.downloader import DownloadLimits
from core.urls import UrlPolicy


class ScriptedResolver:
    """Answers `answers[host]` in turn (the last answer repeats) and counts the lookups."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        script = self.answers.get(host)
        if script is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not a test host")
        return script.pop(0) if len(script) > 1 else script[0]


def make_policy(
    server: AttachmentServer, resolver: ScriptedResolver, *, port: int | None = None
) -> UrlPolicy:
    """The policy of these tests: the test hosts and a few forbidden literals are allow-listed,
    ::1 is trusted, the server's port allowed."""
    return UrlPolicy(
        allowed_hosts=[
            "files.test",
            "rebind.test",
            "127.0.0.1",
            "[::ffff:127.0.0.1]",
            "169.254.169.254",
            "168.63.129.16",
        ],
        allowed_domain_suffixes=["files.test"],
        allowed_ports=[443, server.port if port is None else port],
        trusted_networks=[ipaddress.ip_network("::1/128")],
        resolver=resolver,
    )


TEST_LIMITS = DownloadLimits(
    max_bytes=1024 * 1024, connect_timeout_s=2, read_timeout_s=0.5, total_timeout_s=5
)
"""Short timeouts and a 1 MiB cap."""


def new_directory(path: Path) -> Path:
    """`path`, created (stores never create their root)."""
    path.mkdir(parents=True, exist_ok=True)
    return path
