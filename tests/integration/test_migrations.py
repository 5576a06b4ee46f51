"""Alembic migrations against a real, fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.dialects.postgresql import insert

from sinks.event_log.tables import inbound_events
from sinks.migrate import alembic_config, current, declared_metadata, upgrade
from tests.integration import databases

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """An empty database of its own (not migrated: the tests migrate it), dropped afterwards."""
    with databases.fresh_database(database_url, "t_migrations", migrated=False) as url:
        yield url


def test_upgrade_head_creates_the_tables_and_is_idempotent(fresh_database: str) -> None:
    assert current(fresh_database) is None
    upgrade(fresh_database)
    upgrade(fresh_database)  # a second run finds nothing to do and changes nothing
    head = ScriptDirectory.from_config(alembic_config(fresh_database)).get_current_head()
    assert head is not None and current(fresh_database) == head

    engine = sqlalchemy.create_engine(fresh_database)
    try:
        inspector = inspect(engine)
        assert {"inbound_events", "dead_letters"} <= set(inspector.get_table_names())
        # Every tables module (what code writes with) matches what the migrations built.
        for table in declared_metadata().sorted_tables:
            built = {
                column["name"]: column
                for column in inspector.get_columns(table.name, schema=table.schema)
            }
            assert set(built) == set(table.columns.keys()), table.name
            for column in table.columns:
                assert built[column.name]["nullable"] == column.nullable, (table.name, column.name)
        uniques = inspector.get_unique_constraints("inbound_events")
        assert [u["column_names"] for u in uniques] == [["source", "event_id"]]
    finally:
        engine.dispose()


def test_duplicate_events_are_absorbed_by_the_unique_key(fresh_database: str) -> None:
    upgrade(fresh_database)
    engine = sqlalchemy.create_engine(fresh_database)
    row = {
        "event_id": "evt_1",
        "source": "stripe",
        "entity_key": "pi_1",
        "topic": "t",
        "partition": 0,
        "offset": 1,
        "payload": {"amount": 100},
        "headers": {},
        "received_at": datetime.now(UTC),
    }
    statement = insert(inbound_events).on_conflict_do_nothing(index_elements=["source", "event_id"])
    try:
        with engine.begin() as conn:
            conn.execute(statement, [row])
            conn.execute(statement, [{**row, "offset": 2}])
            count = conn.execute(text("SELECT count(*) FROM inbound_events")).scalar_one()
            stored_at = conn.execute(text("SELECT stored_at FROM inbound_events")).scalar_one()
        assert count == 1
        assert stored_at is not None
    finally:
        engine.dispose()
