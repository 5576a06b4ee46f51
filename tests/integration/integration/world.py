"""A small API Integration world for integration tests: a fresh migrated database, the
topics, a sandbox (ERP target) and the real API in a thread; plus Shopify → ERP flows in it.

Shared by the delivery proofs and the crash test of the reliability road.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select

from api.main import create_app
from api.server import serving_in_thread
from sandbox.harness import SandboxServer
from sinks.integration import store
from sinks.integration.tables import (
    connectors,
    endpoints,
    flows,
    runs,
)
from streams.integration.pipeline import Delivery
from streams.road import FailureRouter, Hop, Outcome, Pipeline, RoadRecord, process
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.fixtures import GOLDEN, SAMPLES
from tests.integration.databases import fresh_database
from topics.admin import apply_topics
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENTS

HERE = Path(__file__).resolve().parent

ORDER = SAMPLES / "shopify" / "order.json"
MAPPING = GOLDEN / "shopify_order_to_erp.mapping.json"
BIG_ID = 2**53 + 7
SHOP_SECRET = f"shpss_{uuid.uuid4().hex}"
ERP_TOKEN = f"erp-{uuid.uuid4().hex}"


def order_body(order_number: int) -> bytes:
    text = ORDER.read_text()
    text = text.replace('"id": 450789469', f'"id": {BIG_ID}', 1)
    return text.replace('"order_number": 1001', f'"order_number": {order_number}', 1).encode()


def shopify_sign(body: bytes, secret: str = SHOP_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@contextmanager
def world_context(settings: Settings, database_url: str) -> Iterator[dict[str, Any]]:
    """The world: call inside a module-scoped fixture that also asks for ``kafka_bootstrap``."""
    with fresh_database(database_url, "t_integration") as url:
        yield from _world(settings, url)


def _world(settings: Settings, url: str) -> Iterator[dict[str, Any]]:
    credentials_key = Fernet.generate_key().decode()
    own = settings.model_copy(
        update={
            "database": DatabaseSettings(url=SecretStr(url)),
            "api": ApiSettings(token=SecretStr("t")),
            # Every process of this world (a worker subprocess too) must open the credentials.
            "credentials_key": SecretStr(credentials_key),
        }
    )
    engine = sqlalchemy.create_engine(url)
    try:
        apply_topics(own)
        with SandboxServer() as sandbox, serving_in_thread(create_app(own)) as api:
            yield {
                "settings": own,
                "engine": engine,
                "sandbox": sandbox,
                "api": api,
                "worker_env": {"SYNAPSEOPS_CREDENTIALS_KEY": credentials_key},
            }
    finally:
        engine.dispose()


def make_flow(world: dict[str, Any], endpoint: str, rules: dict[str, Any]) -> int:
    """A Shopify webhook endpoint → the sandbox ERP's order API through ``rules``."""
    engine, settings = world["engine"], world["settings"]
    suffix = uuid.uuid4().hex[:8]
    shop = store.insert_row(engine, connectors, {"name": f"shop-{suffix}", "protocol": "webhook"})
    erp = store.insert_row(
        engine,
        connectors,
        {"name": f"erp-{suffix}", "protocol": "rest", "base_url": world["sandbox"].url},
    )
    signing = store.create_credential(
        engine, settings, name=f"sign-{suffix}", kind="signing_secret", secret=SHOP_SECRET
    )
    bearer = store.create_credential(
        engine, settings, name=f"erp-{suffix}", kind="bearer", secret=ERP_TOKEN
    )
    source = store.insert_row(
        engine,
        endpoints,
        {
            "connector_id": shop["id"],
            "name": endpoint,
            "direction": "source",
            "signature_scheme": "shopify",
            "secret_credential_id": signing["id"],
        },
    )
    target = store.insert_row(
        engine,
        endpoints,
        {
            "connector_id": erp["id"],
            "name": "orders",
            "direction": "target",
            "method": "POST",
            "path": "/erp/api/orders",
            "config": {"timeout_s": 5},
        },
    )
    mapping = store.create_mapping(engine, name=f"m-{suffix}", rules=rules)
    flow = store.insert_row(
        engine,
        flows,
        {
            "name": f"f-{suffix}",
            "source_endpoint_id": source["id"],
            "target_endpoint_id": target["id"],
            "credential_id": bearer["id"],
            "mapping_id": mapping["id"],
        },
    )
    world.setdefault("connector_of", {})[flow["id"]] = (shop["name"], mapping["id"])
    return int(flow["id"])


def post(
    world: dict[str, Any], connector: str, endpoint: str, body: bytes, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{world['api']}/webhooks/{connector}/{endpoint}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=20,
    )


def read_at(settings: Settings, topic: str, partition: int, offset: int) -> RoadRecord:
    consumer = Consumer(consumer_config(settings.kafka, f"t-read-{uuid.uuid4().hex}"))
    consumer.assign([TopicPartition(topic, partition, offset)])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return RoadRecord.from_confluent(message)
    finally:
        consumer.close()
    raise AssertionError(f"no record at {topic}/{partition}@{offset}")


_LEADERLESS = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


def end_offsets(settings: Settings, topic: str) -> list[int]:
    """The end offset of each of ``topic``'s partitions (as many as the topic has). Right after
    the test broker's cold start a partition may have no leader yet: asked again until it has."""
    consumer = Consumer(consumer_config(settings.kafka, f"t-marks-{uuid.uuid4().hex}"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                count = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
                return [
                    consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(count or INTEGRATION_EVENTS.partitions)
                ]
            except KafkaException as exc:
                error = exc.args[0]
                leaderless = error.code() in _LEADERLESS or error.retriable()
                if not leaderless or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def run_through(world: dict[str, Any], *records: RoadRecord) -> list[Outcome | Hop]:
    settings = world["settings"]

    async def drive() -> list[Outcome | Hop]:
        producer = AsyncProducer(settings.kafka)
        delivery = Delivery(settings, world["engine"])
        pipeline = Pipeline.declared(INTEGRATION_DELIVERY, delivery.handlers, settings)
        try:
            return [await process(pipeline, r, FailureRouter(producer)) for r in records]
        finally:
            await delivery.aclose()
            await asyncio.to_thread(producer.close)

    return asyncio.run(drive())


def erp_orders(world: dict[str, Any], external_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{world['sandbox'].url}/erp/api/orders",
        params={"external_id": external_id},
        headers={"Authorization": "Bearer x"},
    )
    return list(response.json()["orders"])


def runs_of(world: dict[str, Any], flow_id: int) -> list[dict[str, Any]]:
    with world["engine"].connect() as conn:
        rows = conn.execute(select(runs).where(runs.c.flow_id == flow_id).order_by(runs.c.id))
        return [dict(row) for row in rows.mappings()]


def accepted_record(world: dict[str, Any], response: httpx.Response) -> RoadRecord:
    assert response.status_code == 202, response.text
    body = response.json()
    return read_at(world["settings"], body["topic"], body["partition"], body["offset"])
