"""Fixtures for core.resilience tests."""

from __future__ import annotations

import pytest
from resilience_fakes import FakeClock


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the backend the pipeline uses."""
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    """A clock that only moves when the test says so."""
    return FakeClock()
