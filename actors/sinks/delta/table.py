"""Opening the table: created on first use, its schema checked, one snapshot per partition.

Why one `DeltaTable` object per partition: the recorded offset of a partition (its
transaction version) is cached next to the snapshot it was read from, and every commit
of that partition starts from that snapshot. delta-rs's conflict checker then fails
our commit ("Concurrent transaction") if any commit after the snapshot carries a
transaction for the same app id, i.e. if another process wrote this partition
meanwhile. So the cache can never let a duplicate in, whatever Kafka's assignment did;
it only has to be re-read after a conflict or an error (see the sink). A shared object
would move its snapshot forward past other writers' commits with every commit of any
partition, and the cached offsets of the other partitions would silently go stale.

Storage: a local directory as is; a remote table (`abfss://`, `az://`) gets the
configured storage options, plus a bearer token for Azure Storage from the process's
credential provider (delta-rs's object store takes it as `bearer_token`). A token is
fixed when a `DeltaTable` object is made, so a partition's object is rebuilt (and its
offset re-read) when the provider hands out a new token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Schema, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from actors.sinks.delta.errors import to_delta_error
from actors.sinks.delta.settings import DeltaSinkSettings
from core.auth import AzureCredentialProvider
from core.errors import ConfigurationError, DeltaTableError
from core.types import ErrorCategory

__all__ = ["PartitionWriter", "StorageAccess", "ensure_table"]

_log = logging.getLogger(__name__)


class StorageAccess:
    """The storage options of each open, with a current token for remote tables."""

    def __init__(
        self, settings: DeltaSinkSettings, credentials: AzureCredentialProvider | None
    ) -> None:
        if settings.is_remote and settings.use_credential_provider and credentials is None:
            raise ConfigurationError(
                f"delta.table {settings.table!r} is remote and use_credential_provider is "
                "set, but no Azure credential is configured (or set storage_options)"
            )
        self._settings = settings
        self._credentials = credentials
        self._refresh_next = False

    def token(self) -> str | None:
        """The storage token to use now (None for local tables or fixed options)."""
        if not (self._settings.is_remote and self._settings.use_credential_provider):
            return None
        assert self._credentials is not None  # checked in __init__
        refresh, self._refresh_next = self._refresh_next, False
        return self._credentials.get_storage_token(force_refresh=refresh)

    def refresh_token_next_time(self) -> None:
        """After an AUTH failure: the next `token()` asks for a fresh one."""
        self._refresh_next = True

    def options(self, token: str | None) -> dict[str, str]:
        """delta-rs storage options with `token` as the bearer token when given."""
        options = dict(self._settings.storage_options)
        if token is not None:
            options["bearer_token"] = token
        return options


def ensure_table(
    settings: DeltaSinkSettings, schema: pa.Schema, options: Mapping[str, str]
) -> None:
    """Create the table if it does not exist; refuse one whose schema differs (PERMANENT)."""
    uri = settings.table
    try:
        table = DeltaTable(uri, storage_options=dict(options))
    except TableNotFoundError:
        table = _create(settings, schema, options)
    except Exception as exc:
        raise to_delta_error(exc, uri, "open", token_in_use="bearer_token" in options) from exc
    expected = Schema.from_arrow(schema)
    found = table.schema()
    if found != expected:
        raise DeltaTableError(
            f"Delta table {uri!r} has another schema than configured: "
            f"{_differences(expected, found)}",
            category=ErrorCategory.PERMANENT,
            context={"table": uri},
        )


def _create(
    settings: DeltaSinkSettings, schema: pa.Schema, options: Mapping[str, str]
) -> DeltaTable:
    try:
        table = DeltaTable.create(
            settings.table,
            schema,
            mode="ignore",  # another writer may create it at the same moment
            partition_by=list(settings.partition_by) or None,
            storage_options=dict(options),
        )
    except Exception as exc:
        try:  # lost the race to create it: use the winner's table
            return DeltaTable(settings.table, storage_options=dict(options))
        except Exception:
            token_in_use = "bearer_token" in options
            raise to_delta_error(exc, settings.table, "create", token_in_use=token_in_use) from exc
    _log.info(
        "created Delta table %s",
        settings.table,
        extra={"table": settings.table, "partition_by": list(settings.partition_by)},
    )
    return table


def _differences(expected: Schema, found: Schema) -> str:
    wanted = {field.name: str(field.type) for field in expected.fields}
    have = {field.name: str(field.type) for field in found.fields}
    parts = [f"missing {name} ({kind})" for name, kind in wanted.items() if name not in have]
    parts += [f"unexpected {name} ({kind})" for name, kind in have.items() if name not in wanted]
    parts += [
        f"{name} is {have[name]}, configured {kind}"
        for name, kind in wanted.items()
        if name in have and have[name] != kind
    ]
    return "; ".join(parts) or "same columns, in another order"


class PartitionWriter:
    """One partition's snapshot of the table and the offset recorded for it there."""

    def __init__(self, uri: str, app_id: str, options: Mapping[str, str], token: str | None):
        self.app_id = app_id
        self.token = token
        try:
            self._table = DeltaTable(uri, storage_options=dict(options))
            recorded = self._table.transaction_version(app_id)
        except Exception as exc:
            action = "read the recorded offset"
            raise to_delta_error(exc, uri, action, token_in_use=token is not None) from exc
        self.version: int = -1 if recorded is None else recorded
        """The highest offset of this partition in the table (-1: none yet)."""

    def commit(self, rows: pa.Table, last_offset: int) -> None:
        """Append `rows` and record `last_offset` for the partition, as one commit."""
        write_deltalake(
            self._table,
            rows,
            mode="append",
            commit_properties=CommitProperties(
                app_transactions=[Transaction(self.app_id, last_offset)]
            ),
        )
        self.version = last_offset
