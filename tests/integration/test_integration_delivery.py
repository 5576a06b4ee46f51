"""API Integration proved end to end: real uvicorn ingress, real broker, real PostgreSQL, the
sandbox ERP over HTTP, and the delivery pipeline driven through ``streams.road.process`` with
a real :class:`FailureRouter`. Each record is read back from the exact partition/offset the
ingress answered, so other traffic on the shared topics never interferes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import make_url

from api.main import create_app
from api.server import serving_in_thread
from sandbox.harness import SandboxServer
from sinks import integration_store as store
from sinks.integration_tables import (
    DEAD,
    SUCCEEDED,
    connectors,
    endpoints,
    flows,
    runs,
)
from sinks.migrate import upgrade
from streams.api_integration import Delivery
from streams.integration.commands import RerunCommand
from streams.road import FailureRouter, Hop, Outcome, Pipeline, RoadRecord, process
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.fixtures import SHARED_FIXTURES
from topics.admin import apply_topics
from topics.registry import INTEGRATION_COMMANDS, INTEGRATION_DELIVERY, INTEGRATION_EVENTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
HERE = Path(__file__).resolve().parent

ORDER = SHARED_FIXTURES / "shopify" / "order.json"
MAPPING = HERE.parent / "unit" / "golden" / "shopify_order_to_erp.mapping.json"
BIG_ID = 2**53 + 7
SHOP_SECRET = f"shpss_{uuid.uuid4().hex}"
ERP_TOKEN = f"erp-{uuid.uuid4().hex}"


def order_body(order_number: int) -> bytes:
    text = ORDER.read_text()
    text = text.replace('"id": 450789469', f'"id": {BIG_ID}', 1)
    return text.replace('"order_number": 1001', f'"order_number": {order_number}', 1).encode()


def shopify_sign(body: bytes, secret: str = SHOP_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    name = f"t_integration_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(make_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    own = settings.model_copy(
        update={
            "database": DatabaseSettings(url=SecretStr(url)),
            "api": ApiSettings(token=SecretStr("t")),
        }
    )
    engine = sqlalchemy.create_engine(url)
    try:
        upgrade(url)
        apply_topics(own)
        with SandboxServer() as sandbox, serving_in_thread(create_app(own)) as api:
            yield {"settings": own, "engine": engine, "sandbox": sandbox, "api": api}
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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


def end_offsets(settings: Settings, topic: str) -> list[int]:
    consumer = Consumer(consumer_config(settings.kafka, f"t-marks-{uuid.uuid4().hex}"))
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(INTEGRATION_EVENTS.partitions)
        ]
    finally:
        consumer.close()


def run_through(world: dict[str, Any], *records: RoadRecord) -> list[Outcome | Hop]:
    settings = world["settings"]

    async def drive() -> list[Outcome | Hop]:
        producer = AsyncProducer(settings.kafka)
        delivery = Delivery(settings, world["engine"])
        pipeline = Pipeline.declared(INTEGRATION_DELIVERY, delivery.handle, settings)
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


def test_signed_shopify_order_becomes_one_erp_order_exact(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/create", json.loads(MAPPING.read_text()))
    connector = world["connector_of"][flow_id][0]
    body = order_body(5001)
    delivery = f"wh-{uuid.uuid4().hex}"
    headers = {"X-Shopify-Hmac-Sha256": shopify_sign(body), "X-Shopify-Webhook-Id": delivery}
    first = post(world, connector, "orders/create", body, **headers)
    record = accepted_record(world, first)
    assert record.value == body  # raw bytes, untouched
    assert dict(record.headers)["synapseops-event-id"] == delivery.encode()

    [outcome] = run_through(world, record)
    assert outcome == Outcome("done", "1 of 1 flow(s) delivered")
    [order] = erp_orders(world, "shopify-5001")
    assert order["source_order_id"] == str(BIG_ID)
    assert order["totals"]["total"] == "409.94" and order["totals"]["tax"] == "11.94"
    assert order["lines"][0]["unit_price"] == "199.00"
    assert order["auth_scheme"] == "bearer"
    assert order["idempotency_key"].startswith(f"synapseops-flow-{flow_id}-")

    [run] = runs_of(world, flow_id)
    assert run["status"] == SUCCEEDED and run["response_status"] == 201
    assert run["source_event_id"] == delivery and run["mapping_version"] == 1
    assert run["request"]["headers"]["Authorization"] == "**hidden**"
    assert ERP_TOKEN not in json.dumps(run["request"]) + json.dumps(run["response"])
    with world["engine"].connect() as conn:
        stored = conn.execute(
            sqlalchemy.text("SELECT request->'body'->>'source_order_id' FROM runs WHERE id = :i"),
            {"i": run["id"]},
        ).scalar_one()
    assert stored == str(BIG_ID)

    # The same delivery id again: answered, one Run, one ERP order.
    second = post(world, connector, "orders/create", body, **headers)
    assert second.status_code == 202 and second.json()["duplicate"] is True
    # ... and the record redelivered to the pipeline (a crash, a replay) is absorbed too.
    [again] = run_through(world, record)
    assert isinstance(again, Outcome) and again.status == "skipped"
    assert len(runs_of(world, flow_id)) == 1
    assert len(erp_orders(world, "shopify-5001")) == 1


def test_wrong_signature_is_401_and_nothing_is_published(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/create", json.loads(MAPPING.read_text()))
    connector = world["connector_of"][flow_id][0]
    body = order_body(5002)
    before = end_offsets(world["settings"], INTEGRATION_EVENTS.name)
    wrong = post(
        world,
        connector,
        "orders/create",
        body,
        **{
            "X-Shopify-Hmac-Sha256": shopify_sign(body, "not-the-secret"),
            "X-Shopify-Webhook-Id": "w",
        },
    )
    missing = post(world, connector, "orders/create", body, **{"X-Shopify-Webhook-Id": "w"})
    assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
    assert missing.status_code == 401 and "missing" in missing.json()["detail"]
    assert post(world, connector, "orders/nope", body).status_code == 404
    assert post(world, "events", "a/b", body).status_code == 404
    assert end_offsets(world["settings"], INTEGRATION_EVENTS.name) == before


def test_mapping_error_dead_letters_and_a_rerun_after_the_fix_delivers_once(
    world: dict[str, Any],
) -> None:
    good = json.loads(MAPPING.read_text())
    broken = json.loads(MAPPING.read_text())
    # Rule 16 (totals.total) reads the email as money: every order fails it.
    broken["rules"][15] = {
        "target": "totals.total",
        "source": "order.email",
        "transforms": ["to_decimal"],
        "required": True,
    }
    flow_id = make_flow(world, "orders/paid", broken)
    connector, mapping_id = world["connector_of"][flow_id]
    body = order_body(5003)
    headers = {"X-Shopify-Hmac-Sha256": shopify_sign(body), "X-Shopify-Webhook-Id": "wh-5003"}
    record = accepted_record(world, post(world, connector, "orders/paid", body, **headers))

    [hop] = run_through(world, record)
    assert isinstance(hop, Hop) and hop.dead and hop.topic == "integration-delivery.dlq"
    [dead] = runs_of(world, flow_id)
    assert dead["status"] == DEAD and dead["error_class"] == "MappingFailed"
    assert dead["failed_rule"].startswith("rule 16 (totals.total): to_decimal failed on")
    assert erp_orders(world, "shopify-5003") == []

    store.save_mapping_version(world["engine"], mapping_id, good)
    command = RerunCommand(run_id=int(dead["id"]), mapping="latest", rerun_id="rr-t")
    rerun = asyncio.run(_publish_command(world["settings"], command, flow_id))

    [outcome] = run_through(world, rerun)
    assert outcome == Outcome("done", f"re-run of run {dead['id']}")
    [order] = erp_orders(world, "shopify-5003")
    assert order["totals"]["total"] == "409.94"
    after = runs_of(world, flow_id)
    assert [r["status"] for r in after] == [DEAD, SUCCEEDED]
    assert after[1]["rerun_of"] == dead["id"] and after[1]["mapping_version"] == 2
    # A second re-run of the same run finds the event delivered: still one order.
    [twice] = run_through(world, rerun)
    assert isinstance(twice, Outcome) and twice.status == "skipped"
    assert len(erp_orders(world, "shopify-5003")) == 1
    assert len(runs_of(world, flow_id)) == 2


async def _publish_command(settings: Settings, command: RerunCommand, flow_id: int) -> RoadRecord:
    producer = AsyncProducer(settings.kafka)
    try:
        partition, offset = await producer.send(
            INTEGRATION_COMMANDS.name, command.encode(), key=command.key(flow_id)
        )
    finally:
        await asyncio.to_thread(producer.close)
    return await asyncio.to_thread(read_at, settings, INTEGRATION_COMMANDS.name, partition, offset)


def test_money_in_the_erp_is_exact_decimal_text(world: dict[str, Any]) -> None:
    flow_id = make_flow(world, "orders/updated", json.loads(MAPPING.read_text()))
    connector = world["connector_of"][flow_id][0]
    body = order_body(5004)
    headers = {"X-Shopify-Hmac-Sha256": shopify_sign(body), "X-Shopify-Webhook-Id": "wh-5004"}
    run_through(
        world, accepted_record(world, post(world, connector, "orders/updated", body, **headers))
    )
    [order] = erp_orders(world, "shopify-5004")
    totals = {k: Decimal(v) for k, v in order["totals"].items()}
    assert (
        totals["subtotal"] + totals["tax"] + totals["shipping"] - totals["discount"]
        == totals["total"]
    )
