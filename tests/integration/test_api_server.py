"""The API served by uvicorn for real, against the real broker and PostgreSQL.

The broker and database come from tests/integration/conftest.py (``kafka_bootstrap``,
``database_url``): started by the project's own scripts when absent; never skipped.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from synapseops import headers as kh
from synapseops.ids import parse_traceparent
from synapseops.kafka import consumer_config
from synapseops.settings import (
    DatabaseSettings,
    IngressSettings,
    KafkaSettings,
    Settings,
    SourceAuth,
)
from tests.fixtures import SAMPLES
from topics.admin import apply_topics
from topics.registry import INBOUND_EVENTS

pytestmark = pytest.mark.integration

FIXTURES = SAMPLES
SHOPIFY_ORDER = FIXTURES / "shopify" / "order.json"
STRIPE_EVENT = FIXTURES / "stripe" / "events" / "charge.refunded.json"
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SOURCE_TOKEN = f"itest-source-{uuid.uuid4().hex}"
SOURCE_AUTH = {"Authorization": f"Bearer {SOURCE_TOKEN}"}
METRICS_SOURCE = f"itest-{uuid.uuid4().hex[:12]}"


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_record(settings: Settings, partition: int, offset: int) -> Message:
    consumer = Consumer(consumer_config(settings.kafka, f"test-api-{uuid.uuid4().hex}"))
    try:
        consumer.assign([TopicPartition(INBOUND_EVENTS.name, partition, offset)])
        for _ in range(100):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                return message
        raise AssertionError(f"no record at {INBOUND_EVENTS.name}[{partition}]@{offset}")
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def base_url(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[str]:
    # The inbound topic as the registry declares it (6 partitions), not auto-created with 1.
    apply_topics(settings)
    auth = SourceAuth(scheme="token", secret=SecretStr(SOURCE_TOKEN))
    sources = {name: auth for name in ("shopify", "stripe", METRICS_SOURCE)}
    served = settings.model_copy(update={"ingress": IngressSettings(sources=sources)})
    with serving_in_thread(create_app(served)) as url:
        yield url


def test_shopify_order_lands_on_the_inbound_topic_byte_for_byte(
    settings: Settings, base_url: str
) -> None:
    raw = SHOPIFY_ORDER.read_bytes()
    webhook_id = f"b54557e4-{uuid.uuid4()}"
    response = httpx.post(
        f"{base_url}/webhooks/events/shopify",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": webhook_id,
            "X-Entity-Key": "order-450789469",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": "not-checked-here",
            "traceparent": TRACE,
            **SOURCE_AUTH,
        },
        timeout=35,
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["event_id"] == webhook_id
    assert accepted["topic"] == INBOUND_EVENTS.name
    assert parse_traceparent(accepted["traceparent"])[0] == TRACE.split("-")[1]  # type: ignore[index]

    record = read_record(settings, accepted["partition"], accepted["offset"])
    assert record.value() == raw
    assert record.key() == b"order-450789469"
    headers = kh.to_map(record.headers())
    assert headers[kh.EVENT_ID] == webhook_id
    assert headers[kh.SOURCE] == "shopify"
    assert headers[kh.EVENT_TYPE] == "orders/create"
    assert headers[kh.CONTENT_TYPE] == "application/json"
    assert headers[kh.TRACEPARENT] == accepted["traceparent"]
    assert headers[kh.RECEIVED_AT].endswith("Z")
    http_headers = json.loads(headers[kh.HTTP_HEADERS])
    assert http_headers["x-shopify-hmac-sha256"] == "not-checked-here"
    assert "authorization" not in http_headers
    assert SOURCE_TOKEN.encode() not in b"".join(value or b"" for _, value in record.headers())


def test_event_id_and_key_fall_back_to_the_body_id(settings: Settings, base_url: str) -> None:
    raw = STRIPE_EVENT.read_bytes()
    body_id = json.loads(raw)["id"]
    response = httpx.post(
        f"{base_url}/webhooks/events/stripe", content=raw, headers=SOURCE_AUTH, timeout=35
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["event_id"] == body_id
    record = read_record(settings, accepted["partition"], accepted["offset"])
    assert record.value() == raw
    assert record.key() == body_id.encode()
    assert kh.to_map(record.headers())[kh.EVENT_TYPE] == "charge.refunded"


def test_metrics_expose_the_ingress_counter_after_a_request(base_url: str) -> None:
    source = METRICS_SOURCE
    body = b'{"id": "evt_metrics_1"}'
    url = f"{base_url}/webhooks/events/{source}"
    assert httpx.post(url, content=body, headers=SOURCE_AUTH).status_code == 202
    assert httpx.post(url, content=b"nope", headers=SOURCE_AUTH).status_code == 400
    text = httpx.get(f"{base_url}/metrics").text
    assert f'synapseops_ingress_requests_total{{outcome="accepted",source="{source}"}} 1.0' in text
    assert f'synapseops_ingress_requests_total{{outcome="invalid",source="{source}"}} 1.0' in text
    assert f'synapseops_ingress_bytes_total{{source="{source}"}} {float(len(body))}' in text
    assert f'synapseops_ingress_latency_seconds_count{{source="{source}"}} 2.0' in text


def test_health_is_ok_with_both_services_up(base_url: str) -> None:
    response = httpx.get(f"{base_url}/health", timeout=15)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k != "checked_at"} == {
        "status": "ok",
        "checks": {"kafka": "ok", "database": "ok"},
    }


def test_health_is_503_with_the_reason_when_the_database_is_down(
    settings: Settings, base_url: str
) -> None:
    dead_url = f"postgresql+psycopg2://synapseops@127.0.0.1:{dead_port()}/synapseops"
    broken = settings.model_copy(update={"database": DatabaseSettings(url=SecretStr(dead_url))})
    with serving_in_thread(create_app(broken)) as url:
        response = httpx.get(f"{url}/health", timeout=15)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["kafka"] == "ok"
    assert body["checks"]["database"].startswith("database unavailable: OperationalError")
    assert "refused" in body["checks"]["database"].lower()


def test_health_is_503_with_the_reason_when_the_broker_is_down(
    settings: Settings, base_url: str
) -> None:
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{dead_port()}")
    broken = settings.model_copy(update={"kafka": kafka})
    with serving_in_thread(create_app(broken)) as url:
        response = httpx.get(f"{url}/health", timeout=15)
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert kafka.bootstrap in body["checks"]["kafka"]


def test_api_v1_needs_the_token_over_real_http(settings: Settings, base_url: str) -> None:
    response = httpx.get(f"{base_url}/api/v1/events")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
