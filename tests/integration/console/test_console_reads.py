"""The reads the console adds to the JSON API, over uvicorn and a fresh database: one trace's
lineage across services, the overview of what waits, dead letters found by their key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy

from api.main import create_app
from api.server import serving_in_thread
from sinks.dead_letters.queries import waiting
from sinks.dead_letters.tables import dead_letters
from sinks.event_log.tables import inbound_events
from synapseops.settings import Settings
from tests.integration.console.test_console_sessions import app_settings
from tests.integration.databases import fresh_database


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with fresh_database(database_url, "t_console_reads") as url:
        own = app_settings(settings, url)
        engine = sqlalchemy.create_engine(url)
        with serving_in_thread(create_app(own)) as base:
            auth = {"Authorization": f"Bearer {own.api.token.get_secret_value()}"}
            yield {"api": base, "engine": engine, "auth": auth}
        engine.dispose()


def dead_letter(
    engine: sqlalchemy.Engine, trace_id: str, key: bytes, pipeline: str, age_s: int
) -> int:
    values = {
        "pipeline": pipeline,
        "dlq_topic": f"{pipeline}.dlq",
        "dlq_partition": 0,
        "dlq_offset": uuid.uuid4().int % 10**9,
        "key": key,
        "value": b'{"order": 1}',
        "headers": {},
        "trace_id": trace_id,
        "error_class": "MappingFailed",
        "error_message": "rule 3 failed",
        "attempts": 1,
        "dead_at": datetime.now(UTC) - timedelta(seconds=age_s),
    }
    with engine.begin() as conn:
        return int(
            conn.execute(
                dead_letters.insert().values(values).returning(dead_letters.c.id)
            ).scalar_one()
        )


def test_a_trace_is_found_across_its_input_and_its_dead_letter(world: dict[str, Any]) -> None:
    trace_id = uuid.uuid4().hex
    with world["engine"].begin() as conn:
        conn.execute(
            inbound_events.insert().values(
                event_id="e1",
                source="github",
                entity_key="r",
                trace_id=trace_id,
                topic="events.inbound",
                partition=0,
                offset=1,
                payload={"hello": "world"},
                headers={},
                received_at=datetime.now(UTC),
            )
        )
    letter = dead_letter(world["engine"], trace_id, b"order-1", "integration-delivery", 5)
    answer = httpx.get(f"{world['api']}/api/v1/lineage/{trace_id}", headers=world["auth"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [e["payload"] for e in body["inbound_events"]] == [{"hello": "world"}]
    assert [d["id"] for d in body["dead_letters"]] == [letter]
    unknown = httpx.get(f"{world['api']}/api/v1/lineage/{uuid.uuid4().hex}", headers=world["auth"])
    assert unknown.status_code == 404
    malformed = httpx.get(f"{world['api']}/api/v1/lineage/not-a-trace", headers=world["auth"])
    assert malformed.status_code == 422
    assert httpx.get(f"{world['api']}/api/v1/lineage/{trace_id}").status_code == 401


def test_the_overview_counts_waiting_dead_letters_by_pipeline_with_the_oldest(
    world: dict[str, Any],
) -> None:
    pipeline = f"p-{uuid.uuid4().hex[:6]}"
    dead_letter(world["engine"], uuid.uuid4().hex, b"k1", pipeline, 600)
    dead_letter(world["engine"], uuid.uuid4().hex, b"k2", pipeline, 60)
    body = httpx.get(f"{world['api']}/api/v1/overview", headers=world["auth"]).json()
    row = next(r for r in body["dead_letters"] if r["pipeline"] == pipeline)
    assert row["waiting"] == 2 and row["error_classes"] == ["MappingFailed"]
    oldest = datetime.fromisoformat(row["oldest_dead_at"])
    assert timedelta(seconds=590) < datetime.now(UTC) - oldest < timedelta(seconds=900)
    assert body["approvals_waiting"] == 0
    # a service's home card asks for its own pipeline only: the same count
    assert waiting(world["engine"], pipeline) == 2
    assert waiting(world["engine"], f"{pipeline}-none") == 0


def test_dead_letters_are_found_by_their_kafka_key(world: dict[str, Any]) -> None:
    key = f"pi_{uuid.uuid4().hex[:10]}"
    letter = dead_letter(world["engine"], uuid.uuid4().hex, key.encode(), "payment-settlement", 1)
    dead_letter(world["engine"], uuid.uuid4().hex, b"someone-else", "payment-settlement", 1)
    found = httpx.get(
        f"{world['api']}/api/v1/dead-letters", params={"key": key}, headers=world["auth"]
    ).json()
    assert [item["id"] for item in found["items"]] == [letter]
    dry = httpx.post(
        f"{world['api']}/api/v1/dead-letters/replay",
        json={"key": key, "dry_run": True},
        headers=world["auth"],
    )
    assert dry.status_code == 200 and dry.json()["matched"] == 1
