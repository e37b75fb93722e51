"""One embedded local stack per test session, reset before each test (moto reset + RAM emulation reset)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeshare_local.stack import LocalStack


@pytest.fixture(scope="session")
def _session_stack() -> Iterator[LocalStack]:
    with LocalStack() as stack:
        yield stack


@pytest.fixture
def stack(_session_stack: LocalStack) -> LocalStack:
    _session_stack.reset()
    return _session_stack


@pytest.fixture(scope="session")
def scenario_runs() -> dict[str, Any]:
    """Each scenario's fault-free run, played once per test process (tests/integration/scenario_runs.py)."""
    return {}
