"""Fixtures for core.logging tests: every test starts from an empty logging context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.logging.context import EMPTY_STATE, state_var


@pytest.fixture(autouse=True)
def empty_log_context() -> Iterator[None]:
    """Start each test with no correlation id, no fields and no Kafka record; restore after."""
    token = state_var.set(EMPTY_STATE)
    yield
    state_var.reset(token)
