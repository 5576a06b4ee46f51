"""A Kafka target's rules and the record it produces (pure; fails before issue 10: no module)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from streams.integration.kafka_target import (
    RUN_ID_HEADER,
    KafkaTarget,
    kafka_target_problems,
    record_headers,
    record_key,
)
from streams.integration.source_config import ReservedTopics
from synapseops.errors import SchemaInvalid

RESERVED = ReservedTopics.of(["integration.events", "payments.events"], "synapseops")


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ({}, "needs kafka_topic"),
        ({"kafka_topic": "integration.events"}, "platform or internal topic"),
        ({"kafka_topic": "integration.undeclared"}, "platform or internal topic"),
        ({"kafka_topic": "__consumer_offsets"}, "platform or internal topic"),
        ({"kafka_topic": "synapseops-changelog"}, "platform or internal topic"),
        ({"kafka_topic": "^erp.*"}, "regex"),
        ({"kafka_topic": "erp out"}, "not a Kafka topic name"),
        ({"kafka_topic": "erp.out", "config": {"key": "a..b"}}, "config.key"),
        ({"kafka_topic": "erp.out", "config": "key=id"}, "JSON object"),
    ],
)
def test_a_kafka_target_that_cannot_run_is_refused(
    endpoint: dict[str, object], problem: str
) -> None:
    problems = kafka_target_problems(endpoint, RESERVED)
    assert problems and any(problem in found for found in problems), problems


def test_a_literal_topic_with_a_key_path_is_accepted() -> None:
    endpoint = {"kafka_topic": "erp.orders", "config": {"key": "customer.id", "timeout_s": 3}}
    assert kafka_target_problems(endpoint, RESERVED) == []


def test_the_key_comes_from_the_mapped_output() -> None:
    target = KafkaTarget("erp", "erp.orders", "customer.id")
    assert record_key(target, {"customer": {"id": 2**53 + 1}}) == b"9007199254740993"
    assert record_key(target, {"customer": {"id": "c-1"}}) == b"c-1"
    assert record_key(target, {"customer": {"id": Decimal("10.50")}}) == b"10.50"
    assert record_key(KafkaTarget("erp", "erp.orders"), {"x": 1}) is None
    with pytest.raises(SchemaInvalid):
        record_key(target, {"customer": {}})
    with pytest.raises(SchemaInvalid):
        record_key(target, {"customer": {"id": {"nested": 1}}})


def test_the_headers_name_the_delivery_and_let_a_consumer_dedupe() -> None:
    headers = dict(
        record_headers(
            idempotency_key="synapseops-flow-3-abc",
            run_id=42,
            event_id="e-1",
            flow_id=3,
            traceparent=None,
        )
    )
    assert headers["Idempotency-Key"] == b"synapseops-flow-3-abc"
    assert headers[RUN_ID_HEADER] == b"42"
    assert headers["synapseops-event-id"] == b"e-1" and "traceparent" not in headers
