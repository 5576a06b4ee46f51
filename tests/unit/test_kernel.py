"""The small kernel pieces: ids, trace context, the error tree, Kafka client configs."""

import re

from synapseops import errors, headers, ids
from synapseops.kafka import consumer_config, producer_config
from synapseops.settings import KafkaSettings


def test_ids_are_prefixed_unique_and_time_ordered() -> None:
    made = [ids.new_id("evt") for _ in range(2000)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"evt_[0-9a-f]{28}", value) for value in made)
    assert [value[:16] for value in made] == sorted(value[:16] for value in made)


def test_traceparent_is_started_parsed_and_continued() -> None:
    root = ids.new_traceparent()
    parsed = ids.parse_traceparent(root)
    assert parsed is not None
    child = ids.child_traceparent(root)
    assert ids.trace_id_of(child) == parsed[0]
    assert child != root
    assert ids.parse_traceparent("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None
    assert ids.parse_traceparent("garbage") is None
    assert ids.trace_id_of(ids.child_traceparent("garbage")) is not None


def test_error_tree_routes_each_failure() -> None:
    assert errors.classify(errors.RateLimited("429", retry_after=3)) == "retryable"
    assert errors.classify(errors.DatabaseUnavailable("down")) == "retryable"
    assert errors.classify(TimeoutError()) == "retryable"
    assert errors.classify(ConnectionRefusedError()) == "retryable"
    assert errors.classify(errors.TargetRejected("400", status=400)) == "fatal"
    assert errors.classify(errors.Undecodable("not json")) == "fatal"
    assert errors.classify(KeyError("bug")) == "fatal"
    assert errors.classify(errors.BusinessRejection("account frozen")) == "rejected"


def test_producers_are_durable_and_consumers_commit_by_hand() -> None:
    kafka = KafkaSettings(bootstrap="h:1")
    producer = producer_config(kafka)
    assert producer["acks"] == "all"
    assert producer["enable.idempotence"] is True
    consumer = consumer_config(kafka, "g")
    assert consumer["enable.auto.commit"] is False
    assert consumer["group.id"] == "g"


def test_http_headers_drop_credentials() -> None:
    kept = headers.http_headers_json({"Authorization": "Bearer x", "X-Shopify-Hmac-Sha256": "abc"})
    assert b"Bearer" not in kept
    assert b"x-shopify-hmac-sha256" in kept
    assert headers.to_map([("a", b"1"), ("b", None)]) == {"a": "1", "b": ""}
