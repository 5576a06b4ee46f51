"""The unauthenticated probes of the API process cost at most one round trip per cache window:
``/health`` over real HTTP (the product's app factory) and the dead-letter gauges of
``/metrics``, against the real broker and a fresh PostgreSQL database. Statements are
counted where they leave SQLAlchemy for the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import event

from api.main import create_app
from api.server import serving_in_thread
from sinks.dead_letters.metrics import DeadLetterGauges
from sinks.dead_letters.tables import dead_letters
from synapseops.settings import DatabaseSettings, ObservabilitySettings, Settings
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def db_url(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_probes") as url:
        yield url


def counting(engine: sqlalchemy.Engine, fragment: str) -> list[str]:
    """Every statement containing ``fragment`` the engine sends from now on."""
    seen: list[str] = []

    def before(conn: object, cursor: object, statement: str, *args: object) -> None:
        if fragment in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    return seen


def test_health_probes_once_per_cache_window_and_keeps_one_broker_client(
    settings: Settings, kafka_bootstrap: str, db_url: str
) -> None:
    cached = settings.model_copy(
        update={
            "database": DatabaseSettings(url=SecretStr(db_url)),
            "observability": ObservabilitySettings(health_cache_s=60),
        }
    )
    app = create_app(cached)
    with serving_in_thread(app) as url:
        pings = counting(app.state.engine, "SELECT 1")
        answers = [httpx.get(f"{url}/health", timeout=15) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert len(pings) == 1, f"{len(pings)} database round trips for 5 health requests"
    assert len({a.json()["checked_at"] for a in answers}) == 1
    assert app.state.health_probe.probes == 1

    uncached = cached.model_copy(update={"observability": ObservabilitySettings(health_cache_s=0)})
    app = create_app(uncached)
    with serving_in_thread(app) as url:
        pings = counting(app.state.engine, "SELECT 1")
        httpx.get(f"{url}/health", timeout=15)
        admin = app.state.health_probe._admin
        assert [httpx.get(f"{url}/health", timeout=15).status_code for _ in range(2)] == [200] * 2
        probe = app.state.health_probe
    assert len(pings) == 3 and probe.probes == 3
    assert probe._admin is admin, "one broker client for the app's life, not one per probe"


def test_the_dead_letter_gauges_query_once_per_cache_window(db_url: str) -> None:
    engine = sqlalchemy.create_engine(db_url)
    try:
        queries = counting(engine, "GROUP BY")
        gauges = DeadLetterGauges()
        gauges.engine, gauges.cache_s = engine, 60

        def depth() -> float:
            for family in gauges.collect():
                if family.name == "synapseops_dead_letters_depth":
                    return sum(s.value for s in family.samples if s.labels["pipeline"] == "t-p")
            return 0.0

        assert [depth() for _ in range(3)] == [0.0] * 3
        assert len(queries) == 1
        with engine.begin() as conn:
            conn.execute(
                dead_letters.insert().values(
                    pipeline="t-p",
                    dlq_topic="t-p.dlq",
                    dlq_partition=0,
                    dlq_offset=1,
                    headers={},
                    dead_at=datetime.now(UTC),
                )
            )
        assert depth() == 0.0 and len(queries) == 1  # still the cached answer
        gauges.cache_s = 0
        assert depth() == 1.0 and len(queries) == 2
    finally:
        engine.dispose()
