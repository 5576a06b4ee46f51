"""The worker for real: ``synapseops worker`` as a subprocess, the real broker, a fresh database.

Events are produced to the shared inbound topic with ids unique to this run; the assertions
count rows by those ids (other records on the topic land in this fresh database too and are
ignored).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
import sqlalchemy
from sqlalchemy import select

from sinks.dead_letters.tables import dead_letters
from sinks.event_log.tables import inbound_events
from sinks.migrate import upgrade
from synapseops import headers as h
from synapseops.kafka import AsyncProducer
from synapseops.settings import KafkaSettings
from tests.fixtures import SAMPLES
from tests.integration.databases import fresh_database
from tests.integration.worker_process import WorkerProcess, running_worker
from topics.registry import INBOUND_EVENTS

pytestmark = pytest.mark.integration

BODIES = [
    SAMPLES / "stripe/events/payment_intent.succeeded.json",
    SAMPLES / "stripe/events/charge.refunded.json",
    SAMPLES / "shopify/order.json",
    SAMPLES / "github/issues.opened.json",
]
DEADLINE_S = 60.0
# Only this pipeline: other tests' records on other pipelines' topics are not this test's work.
ONLY_EVENT_LOG: dict[str, object] = {"extra_env": {"SYNAPSEOPS_WORKER_PIPELINES": "event-log"}}


@pytest.fixture(scope="module")
def event_log_database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_event_log") as url:
        yield url


@pytest.fixture
def worker(
    kafka_bootstrap: str, event_log_database: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    with running_worker(kafka_bootstrap, event_log_database, tmp_path, **ONLY_EVENT_LOG) as started:
        yield started


async def produce(
    bootstrap: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AsyncProducer(KafkaSettings(bootstrap=bootstrap))
    try:
        for key, value, headers in records:
            await producer.send(INBOUND_EVENTS.name, value, key=key, headers=headers)
    finally:
        producer.close()


def ingress_headers(event_id: str, source: str) -> list[tuple[str, bytes]]:
    return [
        (h.EVENT_ID, event_id.encode()),
        (h.SOURCE, source.encode()),
        (h.RECEIVED_AT, b"2026-01-02T03:04:05.000Z"),
        (h.CONTENT_TYPE, b"application/json"),
    ]


def metric(text: str, outcome: str) -> float:
    """``synapseops_road_records_total`` of the event-log pipeline for one outcome."""
    pattern = (
        r'^synapseops_road_records_total\{(?=[^}]*pipeline="event-log")'
        r'(?=[^}]*outcome="' + outcome + r'")[^}]*\}\s+(\S+)$'
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_worker_stores_events_once_and_keeps_poison(
    worker: WorkerProcess, kafka_bootstrap: str, event_log_database: str
) -> None:
    worker.wait_healthy()

    run = uuid4().hex[:8]
    source = f"test-{run}"
    good = [(f"evt_{run}_{n}", path.read_bytes()) for n, path in enumerate(BODIES)]
    poison_id = f"evt_{run}_poison"
    records = [
        (f"entity-{n}".encode(), body, ingress_headers(eid, source))
        for n, (eid, body) in enumerate(good)
    ]
    # The first event again (a webhook redelivery) and a body that is not JSON.
    records.append((b"entity-0", good[0][1], ingress_headers(good[0][0], source)))
    records.append((b"entity-x", b'{"broken": ', ingress_headers(poison_id, source)))
    asyncio.run(produce(kafka_bootstrap, records))

    engine = sqlalchemy.create_engine(event_log_database)
    ids = [eid for eid, _ in good]
    stored: list[sqlalchemy.Row[tuple[str, str]]] = []
    dead: list[sqlalchemy.Row[tuple[str, bytes]]] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                stored = list(
                    conn.execute(
                        select(inbound_events.c.event_id, inbound_events.c.entity_key).where(
                            inbound_events.c.source == source
                        )
                    )
                )
                # The poison record took the dead-letter road into the dead_letters table.
                dead = list(
                    conn.execute(
                        select(dead_letters.c.error_class, dead_letters.c.value).where(
                            dead_letters.c.pipeline == "event-log",
                            dead_letters.c.headers[h.EVENT_ID].astext == poison_id,
                        )
                    )
                )
            if len(stored) >= len(good) and dead:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()

    # Exactly one row per distinct event id: the redelivered one was absorbed.
    assert sorted(row.event_id for row in stored) == sorted(ids)
    assert {row.event_id: row.entity_key for row in stored}[ids[0]] == "entity-0"
    assert [(row.error_class, row.value) for row in dead] == [("Undecodable", b'{"broken": ')]

    assert httpx.get(f"{worker.base}/health", timeout=5).status_code == 200
    metrics = worker.metrics()
    assert metric(metrics, "done") >= len(good)
    assert metric(metrics, "skipped") >= 1
    assert metric(metrics, "dead") >= 1
    assert "synapseops_road_processing_seconds_count" in metrics

    # SIGTERM stops the worker cleanly.
    assert worker.stop() == 0


def test_database_trouble_rides_the_retry_tiers_until_the_record_is_written(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    # The worker starts against a database whose schema is not there yet (as after a restore
    # or before `db migrate`): every write fails and the record goes to the retry tiers;
    # once the schema is there, a later tier writes it. Tiers long enough to migrate in.
    with (
        fresh_database(database_url, "t_event_log", migrated=False) as database,
        running_worker(
            kafka_bootstrap, database, tmp_path, tiers="3s,6s,12s", **ONLY_EVENT_LOG
        ) as worker,
    ):
        worker.wait_healthy()
        run = uuid4().hex[:8]
        event_id, source = f"evt_{run}_late", f"test-{run}"
        body = BODIES[0].read_bytes()
        asyncio.run(
            produce(kafka_bootstrap, [(b"entity", body, ingress_headers(event_id, source))])
        )

        deadline = time.monotonic() + DEADLINE_S
        while metric(worker.metrics(), "retry") < 1:
            assert time.monotonic() < deadline, "the worker never retried"
            time.sleep(0.3)

        upgrade(database)
        engine = sqlalchemy.create_engine(database)
        try:
            found: list[str] = []
            while not found:
                assert time.monotonic() < deadline, "the record never arrived after the fix"
                with engine.connect() as conn:
                    found = list(
                        conn.execute(
                            select(inbound_events.c.event_id).where(
                                inbound_events.c.source == source
                            )
                        ).scalars()
                    )
                time.sleep(0.3)
        finally:
            engine.dispose()
        assert found == [event_id]
        assert worker.process is not None and worker.process.poll() is None
