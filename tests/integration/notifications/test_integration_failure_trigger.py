"""A source event the integration pipeline fails for good is announced once as an
``integration_failure`` trigger on the real triggers topic (and read back by the engine)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.models import NotificationTrigger
from schemas.serde import AvroSerde
from schemas.store import schema_store
from streams.integration.failures import announce
from streams.road import Outcome, RoadRecord
from streams.triggers import TriggerPublisher
from synapseops import headers as h
from synapseops.errors import MappingSpecInvalid, TargetUnavailable
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.settings import KafkaSettings, Settings
from topics.admin import apply_topics
from topics.registry import INTEGRATION_EVENTS, NOTIFICATION_TRIGGERS

pytestmark = pytest.mark.integration


def test_fatal_answers_are_announced_once_and_nothing_else(kafka_bootstrap: str) -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap=kafka_bootstrap))
    apply_topics(settings)
    consumer = Consumer(consumer_config(settings.kafka, f"t-{uuid.uuid4().hex[:8]}"))
    starts = []
    for partition in range(NOTIFICATION_TRIGGERS.partitions):
        tp = TopicPartition(NOTIFICATION_TRIGGERS.name, partition)
        starts.append(
            TopicPartition(tp.topic, partition, consumer.get_watermark_offsets(tp, 10)[1])
        )
    event_id = f"evt_{uuid.uuid4().hex[:8]}"
    headers = h.ingress_headers(
        event_id=event_id, source="shop", traceparent="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
        connector="demo-shop", endpoint="orders/create",
    )  # fmt: skip
    records = [
        RoadRecord(
            INTEGRATION_EVENTS.name, 0, i, None, b"order-1", b"{}", headers if i == 1 else []
        )
        for i in range(3)
    ]
    answers: list[Outcome | BaseException] = [
        Outcome("done"),
        MappingSpecInvalid(["rule total: no such field"]),
        TargetUnavailable("ERP answered 503"),
    ]
    producer = AsyncProducer(settings.kafka)
    result = asyncio.run(announce(TriggerPublisher(producer, settings), records, list(answers)))
    producer.close()
    assert result == answers  # announced, the answers go on unchanged
    consumer.assign(starts)
    serde = AvroSerde(schema_store(), NOTIFICATION_TRIGGERS.value_schema)
    found: list[NotificationTrigger] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not found:
        message = consumer.poll(0.3)
        if message is not None and not message.error() and message.key() == b"order-1":
            found.append(NotificationTrigger.from_record(serde.decode(message.value() or b"")))
    consumer.close()
    (trigger,) = found
    assert (trigger.kind, trigger.subject_id) == ("integration_failure", event_id)
    assert trigger.details["connector"] == "demo-shop" and trigger.trace_id == "ab" * 16
    assert trigger.dedup_key == f"integration_failure:{event_id}"
