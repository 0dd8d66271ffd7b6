"""Delta sink settings: every bad value is refused with the key named; the error mapping of
delta-rs messages that the emulator cannot produce (OneLake, Azure throttling)."""

from __future__ import annotations

from typing import Any

import pytest
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError

from actors.sinks.delta import DeltaSinkSettings
from actors.sinks.delta.errors import is_commit_conflict, to_delta_error
from core.errors import ConfigurationError
from core.types import ErrorCategory


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"table": ""}, "delta.table"),
        ({"table": "t", "value": "avro"}, "delta.value"),
        ({"table": "t", "value": "json"}, "delta.columns"),
        ({"table": "t", "columns": {"a": "string"}}, "delta.columns"),
        ({"table": "t", "value": "json", "columns": {"a": "varchar"}}, "delta.columns"),
        ({"table": "t", "value": "json", "columns": {"offset": "long"}}, "delta.columns"),
        (
            {"table": "t", "value": "json", "columns": {"a": "string"}, "required": ["b"]},
            "delta.required",
        ),
        ({"table": "t", "partition_by": ["day"]}, "delta.partition_by"),
        ({"table": "t", "extra_column_types": {"day": "string"}}, "delta.extra_columns"),
        (
            {
                "table": "t",
                "extra_columns": "no_such_module:fn",
                "extra_column_types": {"d": "string"},
            },
            "delta.extra_columns",
        ),
        ({"table": "t", "conflict_retries": 101}, "delta.conflict_retries"),
        ({"table": "t", "compact_every_commits": -1}, "delta.compact_every_commits"),
        ({"table": "t", "vacuum_retention_hours": 24}, "delta.vacuum_retention_hours"),
        ({"table": "t", "batch_size": 5}, "delta.batch_size"),
    ],
)
def test_bad_settings_name_their_key(raw: dict[str, Any], key: str) -> None:
    """Each invalid [delta] value raises ConfigurationError naming delta.<key>."""
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        DeltaSinkSettings.from_mapping(raw)


def test_settings_from_a_mapping_load_the_extra_columns_function() -> None:
    """A full [delta] table parses; extra_columns names a function that is imported."""
    settings = DeltaSinkSettings.from_mapping(
        {
            "table": "abfss://ws@onelake.dfs.fabric.microsoft.com/lh.Lakehouse/Tables/results",
            "value": "json",
            "columns": {"path": "string", "size": "long"},
            "required": ["path"],
            "partition_by": ["day"],
            "extra_columns": "os.path:basename",
            "extra_column_types": {"day": "string"},
        }
    )
    assert settings.is_remote
    assert settings.partition_by == ("day",)
    assert settings.extra_columns is not None
    assert settings.value_columns == ("path", "size")


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (SchemaMismatchError("Cannot cast schema"), ErrorCategory.PERMANENT),
        (
            OSError("Error performing PUT ... 403 Forbidden AuthorizationPermissionMismatch"),
            ErrorCategory.PERMANENT,
        ),
        (
            OSError("Generic LocalFileSystem error: Permission denied (os error 13)"),
            ErrorCategory.PERMANENT,
        ),
        (
            OSError("Error performing GET ... 401 Unauthorized InvalidAuthenticationInfo"),
            ErrorCategory.AUTH,
        ),
        (
            OSError(
                "403 Forbidden AuthenticationFailed: Lifetime validation failed. token is expired"
            ),
            ErrorCategory.AUTH,
        ),
        (
            OSError("Error performing PUT ... 503 Service Unavailable ServerBusy"),
            ErrorCategory.TRANSIENT,
        ),
        (OSError("Error performing PUT ... 429 Too Many Requests"), ErrorCategory.TRANSIENT),
        (OSError("Error performing GET ... 500 Internal Server Error"), ErrorCategory.TRANSIENT),
        (OSError("error sending request for url"), ErrorCategory.TRANSIENT),
        (
            OSError("Error performing GET ... 404 Not Found ContainerNotFound"),
            ErrorCategory.PERMANENT,
        ),
        (DeltaError("Invalid table version: 1"), ErrorCategory.UNKNOWN),
    ],
)
def test_delta_rs_failures_map_to_categories(exc: BaseException, category: ErrorCategory) -> None:
    """delta-rs messages (as the real object store words them) map to the documented categories."""
    assert to_delta_error(exc, "az://c/t", "commit").category is category


def test_errors_drop_url_query_strings() -> None:
    """A SAS token in a failing URL's query string never reaches the error message."""
    error = to_delta_error(
        OSError(
            "Error performing GET https://a.blob.core.windows.net/c?sig=SECRET 503 Unavailable"
        ),
        "az://c/t",
        "commit",
    )
    assert "SECRET" not in str(error)
    assert error.category is ErrorCategory.TRANSIENT


def test_commit_conflicts_are_recognised() -> None:
    """Concurrent-transaction and metadata-changed commit failures are conflicts; others are not."""
    assert is_commit_conflict(
        CommitFailedError("Failed to commit transaction: Concurrent transaction failed.")
    )
    assert is_commit_conflict(
        CommitFailedError("Failed to commit transaction: Metadata changed since last commit.")
    )
    assert not is_commit_conflict(
        CommitFailedError("Failed to commit transaction: max retries exceeded")
    )
    assert not is_commit_conflict(OSError("Concurrent transaction failed."))
