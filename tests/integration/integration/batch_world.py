"""Helpers of the batch, catalog and Kafka-target proofs: records made as ingress makes them,
a Kafka-target flow, and the records a topic holds."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sinks.integration import store
from sinks.integration.tables import connectors, endpoints, flows
from streams.road import RoadRecord
from synapseops import headers as kh
from synapseops.kafka import consumer_config, create_admin
from synapseops.settings import Settings


def event_record(
    connector: str, endpoint: str, event_id: str, body: bytes, key: str, offset: int
) -> RoadRecord:
    """A record of ``integration.events`` as an ingress (webhook, poller, forwarder) writes it."""
    headers = [
        (kh.EVENT_ID, event_id.encode()),
        (kh.CONNECTOR, connector.encode()),
        (kh.ENDPOINT, endpoint.encode()),
        (kh.CONTENT_TYPE, b"application/json"),
    ]
    return RoadRecord("integration.events", 0, offset, None, key.encode(), body, headers)


def make_topic(settings: Settings, partitions: int = 3) -> str:
    from confluent_kafka.admin import NewTopic

    name = f"t.flow-out.{uuid.uuid4().hex[:8]}"
    admin = create_admin(settings.kafka)  # kept alive until the topic exists
    futures = admin.create_topics([NewTopic(name, partitions, 1)])
    for future in futures.values():
        future.result(timeout=30)
    return name


def make_kafka_flow(
    world: dict[str, Any], rules: dict[str, Any], topic: str, *, source_protocol: str = "webhook"
) -> tuple[str, int]:
    """A source endpoint ``orders`` → a Kafka target producing to ``topic`` keyed by the
    mapped ``source_order_id``; (source connector name, flow id)."""
    engine = world["engine"]
    suffix = uuid.uuid4().hex[:8]
    shop = store.insert_row(
        engine, connectors, {"name": f"src-{suffix}", "protocol": source_protocol}
    )
    out = store.insert_row(engine, connectors, {"name": f"out-{suffix}", "protocol": "kafka"})
    source = store.insert_row(
        engine,
        endpoints,
        {"connector_id": shop["id"], "name": "orders", "direction": "source",
         "signature_scheme": "none"},
    )  # fmt: skip
    target = store.insert_row(
        engine,
        endpoints,
        {"connector_id": out["id"], "name": "orders", "direction": "target",
         "kafka_topic": topic, "config": {"key": "source_order_id"}},
    )  # fmt: skip
    mapping = store.create_mapping(engine, name=f"m-{suffix}", rules=rules)
    flow = store.insert_row(
        engine,
        flows,
        {"name": f"f-{suffix}", "source_endpoint_id": source["id"],
         "target_endpoint_id": target["id"], "mapping_id": mapping["id"]},
    )  # fmt: skip
    return str(shop["name"]), int(flow["id"])


def read_topic(
    settings: Settings, topic: str, expected: int, partitions: int = 3, wait_s: float = 60.0
) -> list[RoadRecord]:
    """Every record of ``topic`` (waits for ``expected`` of them, then 1 s for any extra)."""
    consumer = Consumer(consumer_config(settings.kafka, f"t-read-{uuid.uuid4().hex}"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: list[RoadRecord] = []
    try:
        deadline = time.monotonic() + wait_s
        settle: float | None = None
        while time.monotonic() < deadline and (settle is None or time.monotonic() < settle):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                found.append(RoadRecord.from_confluent(message))
            if settle is None and len(found) >= expected:
                settle = time.monotonic() + 1.0
    finally:
        consumer.close()
    return found
