"""The pipeline's de-duplication keys are pruned past their retention: old keys go, in
batches, recent ones stay, and the scan has its index (migration 0015). Before, nothing
ever deleted from ``aggregation_seen``: it grew with every event ever published."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy

from sinks.aggregation.seen import SeenKeys
from sinks.aggregation.tables import seen
from streams.aggregation.pruning import SeenPruner
from synapseops.settings import AggregationSettings
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[sqlalchemy.Engine]:
    with fresh_database(database_url, "t_seen") as url:
        engine = sqlalchemy.create_engine(url)
        yield engine
        engine.dispose()


def _keys(engine: sqlalchemy.Engine) -> set[str]:
    with engine.connect() as conn:
        return {row.id for row in conn.execute(sqlalchemy.select(seen.c.id))}


def _seed(engine: sqlalchemy.Engine, now: datetime) -> None:
    old = [{"source": "s", "id": f"old{n}", "seen_at": now - timedelta(days=31)} for n in range(7)]
    recent = [
        {"source": "s", "id": f"new{n}", "seen_at": now - timedelta(days=29)} for n in range(3)
    ]
    with engine.begin() as conn:
        conn.execute(seen.insert(), old + recent)


def test_prune_deletes_only_keys_past_the_cutoff_in_batches(engine: sqlalchemy.Engine) -> None:
    now = datetime.now(UTC)
    _seed(engine, now)
    assert SeenKeys(engine).prune(now - timedelta(days=30), batch=3) == 7  # 3 + 3 + 1
    assert _keys(engine) == {"new0", "new1", "new2"}
    assert SeenKeys(engine).prune(now - timedelta(days=30)) == 0
    with engine.connect() as conn:
        indexes = conn.execute(
            sqlalchemy.text("SELECT indexdef FROM pg_indexes WHERE tablename = 'aggregation_seen'")
        ).scalars()
        assert any("(seen_at)" in definition for definition in indexes)


def test_the_worker_task_prunes_at_start_and_a_zero_retention_keeps_all(
    engine: sqlalchemy.Engine,
) -> None:
    now = datetime.now(UTC)
    _seed(engine, now)

    async def run(days: float) -> None:
        settings = AggregationSettings(seen_retention_days=days, seen_prune_every_s=0.05)
        pruner = SeenPruner(SeenKeys(engine), settings)
        task = asyncio.ensure_future(pruner.run())
        await asyncio.sleep(0.3)
        await pruner.stop()
        await task

    asyncio.run(run(0))
    assert len(_keys(engine)) == 10
    asyncio.run(run(30))
    assert _keys(engine) == {"new0", "new1", "new2"}
