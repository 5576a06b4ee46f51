"""The browser tests' stack: one per session (API, worker, sandbox, a fresh database), and
one browser per person (``console``), all real.

The broker and database fixtures are the integration tests' own (imported here, so a run of
``pytest tests`` shares one broker and one PostgreSQL cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Playwright, sync_playwright

from synapseops.settings import PROJECT_ROOT
from tests.e2e.browser import LAPTOP, Console, console_for
from tests.e2e.stack import PASSWORDS, Stack, running_stack
from tests.integration.conftest import database_url, kafka_bootstrap, settings

__all__ = ["database_url", "kafka_bootstrap", "settings"]
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the browser tests, and run them after every other test of the session.

    Their session fixtures live until the session ends: the stack's API and worker, and
    Playwright's sync driver, which keeps an event loop running in the main thread (any
    ``asyncio.run`` of a later test would fail with "cannot be called from a running event
    loop"). Last, they start only when nothing else is left to disturb. The order among
    them stays as collected.
    """
    browser = [item for item in items if item.path.is_relative_to(HERE)]
    for item in browser:
        item.add_marker(pytest.mark.e2e)
    others = [item for item in items if not item.path.is_relative_to(HERE)]
    items[:] = others + browser


@pytest.fixture(scope="session")
def stack(settings: object, kafka_bootstrap: str, database_url: str) -> Iterator[Stack]:
    data_dir = PROJECT_ROOT / ".data" / "test" / "e2e-stack"
    with running_stack(settings, kafka_bootstrap, database_url, data_dir) as running:  # type: ignore[arg-type]
        yield running


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def console(playwright: Playwright, stack: Stack) -> Iterator[Callable[..., Console]]:
    """``console("operator")``: a fresh browser logged in as that demo role."""
    with ExitStack() as browsers:

        def open_as(role: str, viewport: dict[str, int] = LAPTOP) -> Console:
            person = browsers.enter_context(console_for(playwright, stack.api, viewport))
            person.login(role, PASSWORDS[role])
            return person

        yield open_as
