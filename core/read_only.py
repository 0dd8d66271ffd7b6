"""Read-only fields over private slots: a frozen dataclass's behaviour, cheap to build.

A frozen dataclass's `__init__` assigns each field through `object.__setattr__`, which
costs more than everything else the consumer does for a record. Objects built once per
consumed record (`core.logging.KafkaLogContext`, `actors.messages.Record`) store plain
private slots in `__init__` instead, and expose each as a property that refuses
assignment and deletion with FrozenInstanceError, as a frozen dataclass would.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from operator import attrgetter
from typing import Any, NoReturn

__all__ = ["read_only_field"]


def read_only_field(name: str) -> Any:
    """A property reading the slot `_<name>` (the getter is C code: attrgetter); assigning
    or deleting it raises FrozenInstanceError."""

    def refuse(self: object, *_: object) -> NoReturn:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    return property(attrgetter(f"_{name}"), refuse, refuse)
