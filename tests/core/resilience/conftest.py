"""Fixtures for core.resilience tests."""

from __future__ import annotations

import pytest
from clocks import ManualClock


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the backend the pipeline uses."""
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that only moves when the test says so."""
    return ManualClock()
