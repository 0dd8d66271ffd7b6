"""Attachments: download the files events name by URL, safely, and store them.

* `core.urls.UrlPolicy` decides which URLs and addresses are allowed;
* `downloader.Downloader` fetches over a pinned httpx transport (`pinned_network`),
  with a circuit breaker per host (`host_breakers`);
* `stores` keeps the files in a local directory or Azure Blob Storage / OneLake, under
  deterministic names (`naming`);
* `handler.AttachmentHandler` puts it together for the consumer;
  `settings.build_attachment_handler` builds it from the `[attachments]` table.
"""

from actors.attachments.downloader import DownloadedFile, Downloader, DownloadLimits
from actors.attachments.handler import AttachmentHandler, StoredAttachment
from actors.attachments.host_breakers import DOWNLOAD_HOST_CIRCUIT_CONFIG, HostBreakers
from actors.attachments.settings import AttachmentSettings, build_attachment_handler
from actors.attachments.stores import AttachmentStore, BlobStore, LocalDirectoryStore

__all__ = [
    "DOWNLOAD_HOST_CIRCUIT_CONFIG",
    "AttachmentHandler",
    "AttachmentSettings",
    "AttachmentStore",
    "BlobStore",
    "DownloadLimits",
    "DownloadedFile",
    "Downloader",
    "HostBreakers",
    "LocalDirectoryStore",
    "StoredAttachment",
    "build_attachment_handler",
]
