"""Fixtures of the notification tests: a sandbox of their own per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.harness import SandboxServer
from tests.integration.ops.conftest import ops_stack  # noqa: F401  (the whole stack, reused)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server
