"""A consumer running the attachments handler, for the broker tests (in-process or as a
child process that a test kills with SIGKILL).

Run as a script: `python attachment_worker.py BOOTSTRAP TOPIC GROUP STORE_DIR PORT CA_PEM`
consumes TOPIC until killed, downloading from the test server at ::1:PORT.
"""

from __future__ import annotations

import ipaddress
import ssl
import sys
from pathlib import Path

import anyio

from actors.attachments import AttachmentHandler, Downloader, LocalDirectoryStore
from actors.attachments.downloader import DownloadLimits
from actors.consumer import ConsumerSettings, KafkaConsumerActor
from actors.consumer.settings import PoisonGuardSettings
from core.resilience.backoff import RetryConfig
from core.urls import UrlPolicy

URL_FIELDS = ("attachment.url",)


async def resolve_to_loopback(host: str, port: int) -> list[str]:
    """Every test host name is the server on ::1."""
    return ["::1"]


def worker_handler(store_dir: Path, port: int, tls: ssl.SSLContext) -> AttachmentHandler:
    """The handler of the broker tests: *.files.test allowed, ::1 trusted, a local store."""
    policy = UrlPolicy(
        allowed_domain_suffixes=["files.test"],
        allowed_hosts=["169.254.169.254"],
        allowed_ports=[443, port],
        trusted_networks=[ipaddress.ip_network("::1/128")],
        resolver=resolve_to_loopback,
    )
    limits = DownloadLimits(connect_timeout_s=2, read_timeout_s=2, total_timeout_s=10)
    return AttachmentHandler(
        downloader=Downloader(policy, limits, verify=tls),
        store=LocalDirectoryStore(store_dir),
        url_fields=URL_FIELDS,
        name_prefix="inbox",
    )


def worker_settings(bootstrap: str, topic: str, group: str) -> ConsumerSettings:
    """Quick joins and commits, fast retries, every failure may be dead-lettered."""
    return ConsumerSettings(
        bootstrap_servers=bootstrap,
        topics=(topic,),
        group_id=group,
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
        commit_interval_s=0.1,
        retry=RetryConfig(max_attempts=3, base_delay_s=0.001, max_delay_s=0.01),
        poison=PoisonGuardSettings(max_share=1.0),
    )


async def _main(bootstrap: str, topic: str, group: str, store: str, port: str, ca: str) -> None:
    handler = worker_handler(Path(store), int(port), ssl.create_default_context(cafile=ca))
    try:
        await KafkaConsumerActor(worker_settings(bootstrap, topic, group), handler).run()
    finally:
        await handler.aclose()


if __name__ == "__main__":
    Path(sys.argv[4]).mkdir(exist_ok=True)
    anyio.run(_main, *sys.argv[1:7], backend="asyncio")
