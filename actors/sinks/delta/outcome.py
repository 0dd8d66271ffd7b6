"""What a batch write reports back: how many rows went in, and which records failed.

A batch handler returns normally when its commit is durable. Records that can never
become a row (a value that is not the configured JSON) are not a reason to fail their
neighbours: they are listed in `failed`, each with a PERMANENT error, and the caller
dead-letters exactly those. Any exception raised instead fails the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.messages import Record
from core.errors import PipelineError

__all__ = ["BatchOutcome", "RecordFailure"]


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """`record` cannot be written; `error` says why (its category is PERMANENT)."""

    record: Record
    error: PipelineError


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """The result of one batch: rows committed now, records already in the table, failures."""

    written: int = 0
    """Rows this call committed."""
    already_written: int = 0
    """Records at or below the table's recorded offset for the partition: a redelivery."""
    failed: tuple[RecordFailure, ...] = ()
    """Records that can never be written, in offset order."""
