"""The warehouse loader killed with ``kill -9`` three times during a 100,000-event load: every
event is in ``warehouse.events`` exactly once, the stored offsets equal the topic's end, and
no batch was loaded twice (the loader says so when it skips rows that were there already).

Without the offsets in the rows' transaction (Kafka commits after the write, say), a kill
between the two makes the next loader read the batch again: the skipped-rows warning fires,
and the stored offsets (if any) lag the topic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import sqlalchemy

from tests.integration.aggregation.canonical import end_offsets
from tests.integration.aggregation.events import create_topic, encoded_events, produce_all
from tests.integration.aggregation.loader_process import LoaderProcess
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration

EVENTS = 100_000
KILL_AT = (12_000, 40_000, 70_000)
DEADLINE_S = 150.0


@pytest.fixture
def warehouse_database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_loader") as url:
        yield url


def _counts(engine: sqlalchemy.Engine, group: str) -> tuple[int, int, dict[int, int]]:
    with engine.connect() as conn:
        total, distinct = conn.execute(
            sqlalchemy.text("SELECT count(*), count(DISTINCT (source, id)) FROM warehouse.events")
        ).one()
        stored = dict(
            conn.execute(
                sqlalchemy.text(
                    "SELECT partition, next_offset FROM warehouse.loader_offsets "
                    "WHERE group_id = :g"
                ),
                {"g": group},
            ).all()
        )
    return int(total), int(distinct), {int(p): int(o) for p, o in stored.items()}


def _stored_sum(engine: sqlalchemy.Engine, group: str) -> int:
    """Rows loaded so far, read cheaply: the stored offsets commit with the rows. A count of
    the table takes long enough that a fast loader (the native transcoder) finished the load
    between the count and the kill."""
    with engine.connect() as conn:
        found = conn.execute(
            sqlalchemy.text(
                "SELECT coalesce(sum(next_offset), 0) FROM warehouse.loader_offsets "
                "WHERE group_id = :g"
            ),
            {"g": group},
        ).scalar_one()
    return int(found)


def test_kill_9_three_times_loads_each_event_exactly_once(
    kafka_bootstrap: str, warehouse_database: str, tmp_path: Path
) -> None:
    run = uuid4().hex[:8]
    topic, group = f"t-canonical-{run}", f"t-loader-{run}"
    create_topic(kafka_bootstrap, topic)
    produce_all(kafka_bootstrap, topic, encoded_events(f"bench-{run}", EVENTS))
    ends = end_offsets(kafka_bootstrap, topic)
    assert sum(ends.values()) == EVENTS

    engine = sqlalchemy.create_engine(warehouse_database)
    loader = LoaderProcess(
        kafka_bootstrap, warehouse_database, tmp_path, topic=topic, group_id=group
    )
    loader.start()
    kills = []
    try:
        deadline = time.monotonic() + DEADLINE_S
        for threshold in KILL_AT:
            while (seen := _stored_sum(engine, group)) < threshold:
                assert time.monotonic() < deadline, f"stuck at {seen} rows"
                time.sleep(0.01)
            loader.kill_9()
            kills.append(_stored_sum(engine, group))
            loader.start()
        while True:
            total, distinct, stored = _counts(engine, group)
            if total >= EVENTS and stored == ends:
                break
            assert time.monotonic() < deadline, f"{total} rows, offsets {stored} vs {ends}"
            time.sleep(0.2)
        time.sleep(2)  # anything loaded twice after the end would show now
        total, distinct, stored = _counts(engine, group)
        print(f"killed at {kills} rows; {total} rows at the end")
        assert (total, distinct) == (EVENTS, EVENTS)
        assert stored == ends
        assert "rows already in the warehouse skipped" not in loader.log_text()
        assert len(kills) == 3 and all(0 < k < EVENTS for k in kills)
    finally:
        loader.stop()
        engine.dispose()
