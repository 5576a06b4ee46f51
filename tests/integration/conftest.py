"""Shared fixtures of the integration tests: a real broker and a real database, always.

Nothing needs to run before the tests: when no broker answers on the bootstrap address the
project's own :class:`LocalBroker` starts one, and without ``SYNAPSEOPS_DATABASE_URL`` the
project's own :class:`LocalPostgres` cluster is started. What the fixtures started they stop at
the end of the session; what was already running (a developer's stack) they leave alone. A part
that cannot come up fails the tests that need it, with the reason: integration tests never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from synapseops.errors import SynapseOpsError
from synapseops.local.kafka_broker import LocalBroker
from synapseops.local.postgres import LocalPostgres
from synapseops.settings import Settings

HERE = Path(__file__).resolve().parent
# The session's broker holds hundreds of partitions by the end of the run; 1 GiB keeps it
# out of GC trouble (the machine has 24 GiB). Second brokers of single tests stay small.
TEST_BROKER_HEAP = "1g"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The Settings of the developer's (or CI's) stack, from the environment and .env."""
    return Settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> Iterator[str]:
    """The bootstrap address of a broker that answers; started by the project if none does."""
    small = settings.kafka.model_copy(update={"heap": TEST_BROKER_HEAP})
    broker = LocalBroker(settings.model_copy(update={"kafka": small}))
    started = False
    if not broker.healthy():
        try:
            started = broker.start(timeout=120) is not None
        except SynapseOpsError as exc:
            pytest.fail(
                f"no Kafka broker on {settings.kafka.bootstrap} and the project's own could not "
                f"start: {exc}",
                pytrace=False,
            )
    yield settings.kafka.bootstrap
    if started:
        broker.stop()


@pytest.fixture(scope="session")
def database_url(settings: Settings) -> Iterator[str]:
    """A migrated database: the local cluster (started if needed) or SYNAPSEOPS_DATABASE_URL's."""
    postgres = LocalPostgres(settings)
    started = postgres.enabled and not postgres.is_running()
    try:
        postgres.start()
        postgres.migrate()
    except SynapseOpsError as exc:
        if started:
            postgres.stop()
        pytest.fail(f"no database for the integration tests: {exc}", pytrace=False)
    yield settings.database_url
    if started:
        postgres.stop()


@pytest.fixture
def unique_name() -> str:
    """A fresh name for a topic, consumer group or database of one test."""
    return f"t-{uuid4().hex[:10]}"
