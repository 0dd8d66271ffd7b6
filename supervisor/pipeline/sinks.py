"""Built-in sinks with a configuration table of their own: `[delta]`, `[attachments]`.

The table's keys belong to the sink: its own settings class validates them, so each
key is named and checked in one place (the sink), and this module only adds what the
process alone knows: that a table is set for the target that reads it, the consumer
group (part of the Delta writer's identity) and the Azure identity (storage tokens).

A sink whose libraries are an optional extra (`delta` needs `kafka-pipeline[delta]`)
is imported only when it is configured; a missing extra is a configuration error that
names the extra to install, found by `check-config` as by `run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from actors.consumer import BatchHandler, Handler
from actors.sinks import ForwardHandler
from core.auth import STORAGE_SCOPE, AzureCredentialProvider
from supervisor.pipeline.config_loader import ConfigError

if TYPE_CHECKING:
    from actors.sinks.delta import DeltaSinkSettings
    from supervisor.pipeline.config import Config

__all__ = ["SINK_TABLES", "build_sink_handler", "check_sink_tables", "storage_scopes"]

SINK_TABLES: Final = ("delta", "attachments")
"""Handler targets that are configured by a table of the same name."""


def check_sink_tables(config: Config) -> None:
    """Raise ConfigError for a sink table set for another target, or a sink table the
    sink refuses (each key checked by the sink's own settings)."""
    target = config.handler.target
    for table in SINK_TABLES:
        if getattr(config, table) and target != table:
            raise ConfigError(table, f"is set, but handler.target is {target!r}, not {table!r}")
    if target == "delta":
        _delta_settings(config.delta)
    if target == "attachments":
        from actors.attachments import AttachmentSettings

        AttachmentSettings.from_mapping(config.attachments)


def storage_scopes(config: Config) -> list[str]:
    """Token scopes the configured sink needs besides the broker's: Azure Storage for a
    Delta table or an attachment store on Azure Blob Storage / OneLake, so the token
    refresher keeps that token fresh too."""
    if config.handler.target == "delta":
        remote = str(config.delta.get("table", "")).startswith(("abfss://", "az://"))
    elif config.handler.target == "attachments":
        remote = str(config.attachments.get("store", "")).startswith(("blob:", "onelake:"))
    else:
        remote = False
    return [STORAGE_SCOPE] if remote else []


def build_sink_handler(
    config: Config,
    credentials: AzureCredentialProvider | None,
    *,
    base_dir: Path,
    producer_settings: Mapping[str, Any],
) -> Handler | BatchHandler | None:
    """The built-in sink `handler.target` names, or None when it names no such sink.

    `producer_settings` connect the attachments' result events (`result_topic`) to the
    broker; a relative local store path is relative to `base_dir`."""
    if config.handler.target == "delta":
        from actors.sinks.delta import DeltaBatchHandler, build_delta_sink

        sink = build_delta_sink(
            _delta_settings(config.delta),
            group_id=config.kafka.group_id,
            credentials=credentials,
        )
        return DeltaBatchHandler(sink)
    if config.handler.target == "attachments":
        from actors.attachments import build_attachment_handler

        topic = config.attachments.get("result_topic")
        return build_attachment_handler(
            config.attachments,
            base_dir=base_dir,
            credential_provider=credentials,
            result_sink=ForwardHandler(str(topic), producer_settings) if topic else None,
        )
    return None


def _delta_settings(table: Mapping[str, Any]) -> DeltaSinkSettings:
    try:
        from actors.sinks.delta import DeltaSinkSettings
    except ImportError as exc:  # deltalake or pyarrow is not installed
        raise ConfigError(
            "handler.target",
            f"'delta' needs the delta extra: pip install 'kafka-pipeline[delta]' "
            f"({exc.name or exc} is missing)",
        ) from None
    return DeltaSinkSettings.from_mapping(table)
