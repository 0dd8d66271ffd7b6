"""The attachments handler's settings, read from one TOML table, and the factory.

Every key has a safe default and a range; an unknown key, a wrong type or a value out
of range is a `ConfigurationError` naming the key (`attachments.<key>`), raised before
anything starts. The keys (see examples/proposed/attachments.toml):

    url_fields               list of dotted JSON paths holding a URL or a list of URLs (required)
    trace_id_field           dotted path of the event id used in stored names ("trace_id";
                             "" uses topic/partition/offset)
    skip_events_without_urls false: an event without URLs is dead-lettered
    allowed_hosts            exact host names (or IP literals) downloads may fetch from
    allowed_domain_suffixes  domains whose hosts (and the domain itself) may be fetched from;
                             at least one host or domain is required
    allowed_ports            [443]
    max_url_length           2048 (16-65536)
    max_bytes                104857600 (1 B - 50 GiB)
    max_redirects            5 (0-20)
    connect_timeout_s        10.0 s (0-300]
    read_timeout_s           30.0 s (0-600]
    total_timeout_s          300.0 s (0-86400]
    content_types            [] = any; e.g. ["application/pdf", "image/*"]
    max_retry_after_s        600.0 s (0-86400): longest Retry-After honoured
    max_urls_per_event       20 (1-1000)
    max_parallel_per_event   4 (1-64)
    max_parallel_downloads   64 (1-1000): across all events; also the connection pool size
    host_failure_threshold   5 (1-1000): failures in a row that open a host's breaker
    host_recovery_timeout_s  30.0 s (0-3600]: how long a host's breaker stays open
    store                    "local:PATH" | "blob:https://ACCOUNT.blob.core.windows.net/CONTAINER"
                             | "onelake:WORKSPACE/ITEM.Lakehouse/Files/FOLDER" (required)
    prefix                   name prefix inside the store ("attachments")
    result_topic             topic the result events are forwarded to ("" = none)

A relative `local:` path is relative to the configuration file's directory; blob and
OneLake stores spool in the system's temporary directory. Blob and
OneLake stores authenticate with the process's `AzureCredentialProvider` (the storage
token, refreshed by the token refresher).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from actors.attachments.downloader import Downloader, DownloadLimits
from actors.attachments.handler import AttachmentHandler, ResultSink
from actors.attachments.host_breakers import HostBreakers
from actors.attachments.storage_credential import StorageTokenCredential
from actors.attachments.stores import (
    ONELAKE_BLOB_ENDPOINT,
    AttachmentStore,
    BlobStore,
    LocalDirectoryStore,
)
from core.auth import AzureCredentialProvider
from core.errors import ConfigurationError
from core.resilience import CircuitBreakerConfig
from core.urls import UrlPolicy

__all__ = ["AttachmentSettings", "build_attachment_handler"]

_TABLE: Final = "attachments"


@dataclass(frozen=True, slots=True)
class AttachmentSettings:
    """The parsed `[attachments]` table (see the module docstring for each key)."""

    url_fields: tuple[str, ...]
    store: str
    trace_id_field: str = "trace_id"
    skip_events_without_urls: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_domain_suffixes: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] = (443,)
    max_url_length: int = 2048
    max_bytes: int = 100 * 1024 * 1024
    max_redirects: int = 5
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    total_timeout_s: float = 300.0
    content_types: tuple[str, ...] = ()
    max_retry_after_s: float = 600.0
    max_urls_per_event: int = 20
    max_parallel_per_event: int = 4
    max_parallel_downloads: int = 64
    host_failure_threshold: int = 5
    host_recovery_timeout_s: float = 30.0
    prefix: str = "attachments"
    result_topic: str = ""

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> AttachmentSettings:
        """Parse and check the table; ConfigurationError naming the first bad key."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(table) - known)
        if unknown:
            raise _bad(unknown[0], f"is not a setting (known: {', '.join(sorted(known))})")
        for required in ("url_fields", "store"):
            if required not in table:
                raise _bad(required, "is required")
        values: dict[str, Any] = {}
        for key, value in table.items():
            default = cls.__dataclass_fields__[key].default
            values[key] = _checked(key, value, default)
        settings = cls(**values)
        settings._check_ranges()
        return settings

    def _check_ranges(self) -> None:
        if not self.url_fields or any(not field for field in self.url_fields):
            raise _bad("url_fields", "must name at least one non-empty dotted path")
        if not self.allowed_hosts and not self.allowed_domain_suffixes:
            raise _bad(
                "allowed_hosts",
                "name at least one host (or a domain in allowed_domain_suffixes): "
                "without one every URL would be refused",
            )
        for key, low, high in (
            ("max_urls_per_event", 1, 1000),
            ("max_parallel_per_event", 1, 64),
            ("max_parallel_downloads", 1, 1000),
            ("host_failure_threshold", 1, 1000),
        ):
            value = getattr(self, key)
            if not low <= value <= high:
                raise _bad(key, f"must be between {low} and {high}, got {value!r}")
        if not 0 < self.host_recovery_timeout_s <= 3600:
            raise _bad("host_recovery_timeout_s", "must be > 0 and <= 3600 seconds")

    def limits(self) -> DownloadLimits:
        """The download limits these settings ask for."""
        return DownloadLimits(
            max_bytes=self.max_bytes,
            max_redirects=self.max_redirects,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            total_timeout_s=self.total_timeout_s,
            content_types=frozenset(self.content_types),
            max_retry_after_s=self.max_retry_after_s,
            max_connections=self.max_parallel_downloads,
        )

    def policy(self) -> UrlPolicy:
        """The URL policy these settings ask for (system resolver, no trusted network)."""
        return UrlPolicy(
            allowed_hosts=self.allowed_hosts,
            allowed_domain_suffixes=self.allowed_domain_suffixes,
            allowed_ports=self.allowed_ports,
            max_url_length=self.max_url_length,
        )


def build_attachment_handler(
    table: Mapping[str, Any],
    *,
    base_dir: Path,
    credential_provider: AzureCredentialProvider | None = None,
    result_sink: ResultSink | None = None,
    policy: UrlPolicy | None = None,
) -> AttachmentHandler:
    """The handler the `[attachments]` table describes.

    `result_sink` receives the result events (build a `forward:` handler for
    `result_topic` and pass it); `credential_provider` is needed for blob and OneLake
    stores; `policy` replaces the one built from the table (tests stand in a resolver
    and a trusted network through it).
    """
    settings = AttachmentSettings.from_mapping(table)
    if settings.result_topic and result_sink is None:
        raise _bad("result_topic", "is set, but no result sink was given to forward to")
    try:
        limits = settings.limits()
        url_policy = policy or settings.policy()
    except ConfigurationError as exc:
        raise ConfigurationError(f"{_TABLE}: {exc}") from None
    store, store_prefix = _build_store(settings.store, base_dir, credential_provider)
    breakers = HostBreakers(
        CircuitBreakerConfig(
            failure_threshold=settings.host_failure_threshold,
            recovery_timeout_s=settings.host_recovery_timeout_s,
        )
    )
    return AttachmentHandler(
        downloader=Downloader(url_policy, limits, breakers=breakers),
        store=store,
        url_fields=settings.url_fields,
        name_prefix="/".join(part for part in (store_prefix, settings.prefix) if part),
        trace_id_field=settings.trace_id_field or None,
        skip_events_without_urls=settings.skip_events_without_urls,
        max_urls_per_event=settings.max_urls_per_event,
        max_parallel_per_event=settings.max_parallel_per_event,
        max_parallel_downloads=settings.max_parallel_downloads,
        result_sink=result_sink,
    )


def _build_store(
    spec: str, base_dir: Path, provider: AzureCredentialProvider | None
) -> tuple[AttachmentStore, str]:
    kind, _, argument = spec.partition(":")
    if kind == "local" and argument:
        path = Path(argument).expanduser()
        try:
            return LocalDirectoryStore(path if path.is_absolute() else base_dir / path), ""
        except ConfigurationError as exc:
            raise _bad("store", f"{spec!r}: {exc}") from None
    staging = Path(tempfile.gettempdir()) / "kafka-pipeline-attachments"
    if kind == "blob":
        parts = urlsplit(argument)
        container, _, prefix = parts.path.strip("/").partition("/")
        if parts.scheme != "https" or not parts.hostname or not container:
            raise _bad(
                "store", f"{spec!r}: expected 'blob:https://ACCOUNT_HOST/CONTAINER[/PREFIX]'"
            )
        account_url = f"https://{parts.netloc}"
        return BlobStore(
            account_url, container, _credential(spec, provider), staging_directory=staging
        ), prefix
    if kind == "onelake":
        workspace, _, item_path = argument.strip("/").partition("/")
        if not workspace or not item_path:
            raise _bad("store", f"{spec!r}: expected 'onelake:WORKSPACE/ITEM.Lakehouse/Files/...'")
        store = BlobStore(
            ONELAKE_BLOB_ENDPOINT, workspace, _credential(spec, provider), staging_directory=staging
        )
        return store, item_path
    raise _bad("store", f"{spec!r}: expected 'local:PATH', 'blob:https://...' or 'onelake:...'")


def _credential(spec: str, provider: AzureCredentialProvider | None) -> StorageTokenCredential:
    if provider is None:
        raise _bad("store", f"{spec!r} needs Azure credentials, and none were configured")
    return StorageTokenCredential(provider)


def _checked(key: str, value: Any, default: Any) -> Any:
    """`value` converted to the type of the key's default (tuples from TOML lists)."""
    if key in ("url_fields",) or isinstance(default, tuple):
        if not isinstance(value, list) or not all(
            isinstance(item, int if key == "allowed_ports" else str) and not isinstance(item, bool)
            for item in value
        ):
            kind = "integers" if key == "allowed_ports" else "strings"
            raise _bad(key, f"must be a list of {kind}, got {value!r}")
        return tuple(value)
    if key == "store" or isinstance(default, str):
        if not isinstance(value, str):
            raise _bad(key, f"must be a string, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _bad(key, f"must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(key, f"must be an integer, got {value!r}")
        return value
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise _bad(key, f"must be a number of seconds, got {value!r}")
    return float(value)


def _bad(key: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{_TABLE}.{key} {problem}", context={"setting": f"{_TABLE}.{key}"})
