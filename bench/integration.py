"""API Integration figures: mapped events per second through one flow (Kafka in → ERP out) and
the mapping engine's own rate on one core, and the PostgreSQL round trips per event
(:mod:`bench.roundtrips`). Prints numbers; asserts nothing about time.

Through the flow: N Shopify orders (distinct ids) are produced to ``integration.events`` with the
connector/endpoint headers, then one consumer runs each through the real delivery pipeline
(map, POST to the sandbox ERP with credential and Idempotency-Key, a Run written before and
after) — record by record (``streams.road.process``) and in batches of one partition
(``streams.road.batch.process_batch``, when the pipeline has a batch handler). A throwaway
database on the configured server and an in-process sandbox keep the figures free of other
traffic.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass

import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bench.roundtrips import count_round_trips
from sandbox.harness import SandboxServer
from sinks.db import make_engine
from sinks.integration import store
from sinks.integration.tables import connectors, endpoints, flows
from sinks.migrate import upgrade
from streams.integration.pipeline import Delivery
from streams.mapping import compile_mapping, load_payload
from streams.road import FailureRouter, Outcome, Pipeline, RoadRecord, process
from streams.road.batch import process_batch
from synapseops import headers as kh
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.settings import PROJECT_ROOT, DatabaseSettings, HttpSettings, Settings
from topics.admin import apply_topics
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENTS

EVENTS = 400
BATCH = 200
MAPPING_SECONDS = 2.0
ORDER = PROJECT_ROOT / "samples" / "shopify" / "order.json"
MAPPING = PROJECT_ROOT / "tests" / "golden" / "shopify_order_to_erp.mapping.json"


def order_text() -> str:
    return ORDER.read_text()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def mapping_rate() -> float:
    """Applications per second of the Shopify→ERP mapping on one core (decode included)."""
    mapping = compile_mapping(json.loads(MAPPING.read_text()))
    raw = order_text().encode()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < MAPPING_SECONDS:
        mapping.apply(load_payload(raw)).raise_for_errors()
        count += 1
    return count / (time.perf_counter() - started)


def make_flow(engine: sqlalchemy.Engine, settings: Settings, erp_url: str) -> tuple[str, int]:
    """A Kafka-sourced Shopify orders endpoint → the ERP's order API; (connector, flow id)."""
    suffix = uuid.uuid4().hex[:8]
    shop = store.insert_row(engine, connectors, {"name": f"bench-{suffix}", "protocol": "kafka"})
    erp = store.insert_row(
        engine, connectors, {"name": f"erp-{suffix}", "protocol": "rest", "base_url": erp_url}
    )
    token = store.create_credential(
        engine, settings, name=f"erp-{suffix}", kind="bearer", secret=uuid.uuid4().hex
    )
    source = store.insert_row(
        engine, endpoints, {"connector_id": shop["id"], "name": "orders", "direction": "source"}
    )
    target = store.insert_row(
        engine,
        endpoints,
        {"connector_id": erp["id"], "name": "orders", "direction": "target",
         "method": "POST", "path": "/erp/api/orders"},
    )  # fmt: skip
    mapping = store.create_mapping(
        engine, name=f"bench-{suffix}", rules=json.loads(MAPPING.read_text())
    )
    flow = store.insert_row(
        engine,
        flows,
        {"name": f"bench-{suffix}", "source_endpoint_id": source["id"],
         "target_endpoint_id": target["id"], "credential_id": token["id"],
         "mapping_id": mapping["id"]},
    )  # fmt: skip
    return str(shop["name"]), int(flow["id"])


@dataclass(frozen=True)
class FlowFigures:
    rate: float  # mapped events delivered per second
    trips: float  # PostgreSQL round trips per event
    statements: float  # of which statements
    savepoints: float


async def _produce_orders(settings: Settings, connector: str) -> dict[int, int]:
    producer = AsyncProducer(settings.kafka)
    text = order_text()
    run = uuid.uuid4().hex[:8]
    # Order numbers of their own per run: the ERP refuses a second order with one number.
    first = 1 + (uuid.uuid4().int % 10**6) * 1000
    starts: dict[int, int] = {}
    sends = []
    for n in range(EVENTS):
        body = text.replace('"order_number": 1001', f'"order_number": {first + n}', 1)
        body = body.replace('"id": 450789469', f'"id": {2**53 + n}', 1)
        headers = [
            (kh.EVENT_ID, f"bench-{run}-{n}".encode()),
            (kh.CONNECTOR, connector.encode()),
            (kh.ENDPOINT, b"orders"),
        ]
        sends.append(
            producer.send(
                INTEGRATION_EVENTS.name, body.encode(), key=str(n).encode(), headers=headers
            )
        )
    for partition, offset in await asyncio.gather(*sends):
        starts[partition] = min(starts.get(partition, offset), offset)
    await asyncio.to_thread(producer.close)
    return starts


async def _through_flow(
    settings: Settings, engine: sqlalchemy.Engine, erp_url: str, batch: int
) -> FlowFigures:
    """``batch`` 0: record by record through ``process``; else batches of up to ``batch``
    records of one partition through ``process_batch`` (the code of issue 10)."""
    connector, _ = await asyncio.to_thread(make_flow, engine, settings, erp_url)
    starts = await _produce_orders(settings, connector)
    consumer = Consumer(consumer_config(settings.kafka, f"bench-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(INTEGRATION_EVENTS.name, p, o) for p, o in starts.items()])
    producer = AsyncProducer(settings.kafka)
    delivery = Delivery(settings, engine)
    handlers = getattr(delivery, "batch_handlers", {}) if batch else {}
    pipeline = (
        Pipeline.declared(
            INTEGRATION_DELIVERY, delivery.handlers, settings, batch_handlers=handlers
        )
        if handlers
        else Pipeline.declared(INTEGRATION_DELIVERY, delivery.handlers, settings)
    )
    router = FailureRouter(producer)
    trips = count_round_trips(engine)
    done = 0
    started = time.perf_counter()
    deadline = started + 300
    while done < EVENTS and time.perf_counter() < deadline:
        messages = await asyncio.to_thread(consumer.consume, max(batch, 1), 0.5)
        records = [
            RoadRecord.from_confluent(m)
            for m in messages
            if m.error() is None
            and (dict(m.headers() or []).get(kh.CONNECTOR) or b"") == connector.encode()
        ]
        by_partition: dict[int, list[RoadRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        for part in by_partition.values():
            if handlers:
                results = await process_batch(pipeline, part, router)
            else:
                results = [await process(pipeline, record, router) for record in part]
            done += sum(isinstance(r, Outcome) and r.status == "done" for r in results)
    elapsed = time.perf_counter() - started
    consumer.close()
    await delivery.aclose()
    await asyncio.to_thread(producer.close)
    if done < EVENTS:
        _say(f"  only {done} of {EVENTS} events delivered before the deadline")
    per = max(done, 1)
    return FlowFigures(
        done / elapsed, trips.total / per, trips.statements / per, trips.savepoints / per
    )


def run() -> None:
    rate = mapping_rate()
    _say(f"mapping engine: {rate:,.0f} Shopify orders mapped per second on one core")
    base = Settings()
    name = f"bench_integration_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(make_url(base.database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = make_url(base.database_url).set(database=name).render_as_string(hide_password=False)
    settings = base.model_copy(update={"database": DatabaseSettings(url=SecretStr(url))})
    # The worker's own engine (pool_pre_ping and all): its round trips are the worker's.
    engine = make_engine(settings)
    try:
        upgrade(url)
        apply_topics(settings)
        with SandboxServer() as sandbox:
            # The in-process sandbox takes a free port: the SSRF guard must allow that one.
            allowed = HttpSettings(allowed_hosts=f"{sandbox.host}:{sandbox.port}")
            flow_settings = settings.model_copy(update={"http": allowed})
            for batch in (0, BATCH):
                figures = asyncio.run(_through_flow(flow_settings, engine, sandbox.url, batch))
                how = f"batches of up to {batch}" if batch else "record by record"
                _say(
                    f"one flow, Kafka in -> ERP out, {how}: {figures.rate:,.1f} mapped events/s, "
                    f"{figures.trips:.2f} PostgreSQL round trips per event "
                    f"({figures.statements:.2f} statements, {figures.savepoints:.2f} savepoints)"
                )
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
