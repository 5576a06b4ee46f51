"""Fixtures of the notification tests: a sandbox of their own per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.harness import SandboxServer


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server
