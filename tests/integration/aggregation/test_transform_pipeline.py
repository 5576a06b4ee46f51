"""The transformation pipeline for real: a worker subprocess running only
``aggregation-transform``, the real broker, a fresh database.

GitHub events built from the public fixtures, OTLP log records and a market tick go in on
their topics; the canonical topic is read back with an independent wire-format decoder. A
payload sent twice is published once; a payload that cannot be transformed is a dead letter
with the reason, and the records after it are still published.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
import sqlalchemy
from sqlalchemy import select

from sinks.dead_letters.tables import dead_letters
from streams.aggregation.logic import github, otel
from synapseops import headers as h
from synapseops.ids import new_traceparent
from synapseops.kafka import AsyncProducer
from synapseops.settings import KafkaSettings, RetrySettings, Settings
from tests.fixtures import SAMPLES
from tests.integration.aggregation.canonical import end_offsets, read_canonical
from tests.integration.databases import fresh_database
from tests.integration.groups import start_groups_at_end
from tests.integration.worker_process import WorkerProcess, running_worker
from topics.admin import apply_topics
from topics.registry import AGGREGATION_RAW, MARKET_TICKS

pytestmark = pytest.mark.integration

ONLY: dict[str, object] = {"extra_env": {"SYNAPSEOPS_WORKER_PIPELINES": "aggregation-transform"}}
TIERS = "1s,2s,3s"
FIXTURES = ["push", "pull_request.opened", "issues.opened", "release.published"]


@pytest.fixture(scope="module")
def aggregation_database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_aggregation") as url:
        yield url


@pytest.fixture
def worker(
    settings: Settings, kafka_bootstrap: str, aggregation_database: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    # The worker's groups begin at the topics' ends: what other tests of the session left on
    # aggregation.raw (bulk uploads, OTLP) is not this test's work.
    group = f"t-agg-{uuid4().hex[:8]}"
    apply_topics(settings.model_copy(update={"retry": RetrySettings(tiers=TIERS)}))
    start_groups_at_end(KafkaSettings(bootstrap=kafka_bootstrap), group, TIERS)
    with running_worker(
        kafka_bootstrap, aggregation_database, tmp_path, tiers=TIERS, group_id=group, **ONLY
    ) as started:
        yield started


def raw_headers(
    source: str, logic: str, source_type: str = "api_polling"
) -> list[tuple[str, bytes]]:
    return [
        (h.SOURCE, source.encode()),
        (h.AGGREGATION_LOGIC, logic.encode()),
        (h.SOURCE_TYPE, source_type.encode()),
        (h.RECEIVED_AT, h.received_at_now().encode()),
        (h.TRACEPARENT, new_traceparent().encode()),
    ]


async def produce(
    bootstrap: str, records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AsyncProducer(KafkaSettings(bootstrap=bootstrap))
    try:
        for topic, key, value, headers in records:
            await producer.send(topic, value, key=key, headers=headers)
    finally:
        producer.close()


def test_fixtures_become_canonical_events_once_and_poison_is_dead_lettered(
    worker: WorkerProcess, kafka_bootstrap: str, aggregation_database: str
) -> None:
    worker.wait_healthy()
    run = uuid4().hex[:8]
    source = f"gh-{run}"
    records = []
    for name in FIXTURES:
        payload = json.loads((SAMPLES / "github" / f"{name}.json").read_bytes())
        event = github.from_webhook(name.split(".")[0], f"{run}-{name}", payload, datetime.now(UTC))
        records.append(
            (
                AGGREGATION_RAW.name,
                source.encode(),
                json.dumps(event).encode(),
                raw_headers(source, "github"),
            )
        )
    # The first one again (a poll that overlapped the last one) and a payload that is not JSON.
    records.append(records[0])
    records.append(
        (AGGREGATION_RAW.name, source.encode(), b'{"broken": ', raw_headers(source, "github"))
    )
    request = json.loads((SAMPLES / "otel" / "logs.json").read_bytes())
    ((resource, scope, record),) = list(otel.log_records(request))
    record = record | {
        "attributes": [*record["attributes"], {"key": "run", "value": {"stringValue": run}}]
    }
    logs = f"logs-{run}"
    records.append(
        (
            AGGREGATION_RAW.name,
            logs.encode(),
            json.dumps(otel.single(resource, scope, record)).encode(),
            raw_headers(logs, "otel", "stream"),
        )
    )
    tick = {
        "venue": f"X{run}",
        "symbol": "ACME",
        "seq": 1,
        "price": "10.5",
        "size": 1,
        "ts": time.time_ns(),
    }
    records.append((MARKET_TICKS.name, b"ACME", json.dumps(tick).encode(), []))

    start = end_offsets(kafka_bootstrap)
    asyncio.run(produce(kafka_bootstrap, records))
    expected = {f"{run}-{name}" for name in FIXTURES}

    def complete(events: list[tuple[dict, dict[str, bytes]]]) -> bool:
        sources = {event["source"] for event, _ in events}
        ids = {event["id"] for event, _ in events}
        return expected <= ids and logs in sources and f"X{run}:ACME:1" in ids

    # Generous: the first test of a session waits for the worker's group on a loaded machine.
    found = read_canonical(kafka_bootstrap, start, want=100_000, deadline_s=240, done=complete)
    mine = [
        (event, headers) for event, headers in found if event["source"] in (source, logs, "market")
    ]
    ids = sorted(event["id"] for event, _ in mine if event["source"] == source)
    assert ids == sorted(f"{run}-{name}" for name in FIXTURES)  # the repeat was not published
    by_source = {event["source"]: (event, headers) for event, headers in mine}
    otel_event, otel_headers = by_source[logs]
    assert (
        otel_event["type"] == "otel.log"
        and otel_event["body"]["time_unix_nano"] == 1544712660300000000
    )
    assert otel_headers["ce_id"].decode() == otel_event["id"]
    assert otel_headers["content-type"] == b"application/avro"
    ticks = [
        event
        for event, _ in mine
        if event["source"] == "market" and event["id"].startswith(f"X{run}")
    ]
    assert [event["subject"] for event in ticks] == ["ACME"]

    engine = sqlalchemy.create_engine(aggregation_database)
    try:
        deadline = time.monotonic() + 60
        rows: list[sqlalchemy.Row[tuple[str]]] = []
        while time.monotonic() < deadline and not rows:
            with engine.connect() as conn:
                rows = list(
                    conn.execute(
                        select(dead_letters.c.error_message).where(
                            dead_letters.c.pipeline == "aggregation-transform"
                        )
                    )
                )
            time.sleep(0.5)
        assert any("payload is not JSON" in row[0] for row in rows), rows
    finally:
        engine.dispose()
