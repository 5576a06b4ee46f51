"""The one check of a source endpoint's configuration (on write and at run time), and what a
forwarded foreign record may keep of its headers."""

from __future__ import annotations

import pytest

from streams.integration.source_config import (
    is_platform_header,
    poll_config_problems,
    reserved_topics,
    source_endpoint_problems,
    source_topic_problem,
)
from streams.integration.topic_sources import TopicSource, forwarded_headers
from streams.road.record import RoadRecord
from synapseops import headers as kh
from synapseops.settings import Settings, WorkerSettings

RESERVED = reserved_topics(Settings(worker=WorkerSettings(group_id="synapseops")))
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def rest(config: object, path: object = "/feed") -> list[str]:
    endpoint = {"direction": "source", "poll_interval_s": 5, "path": path, "config": config}
    return source_endpoint_problems("rest", endpoint, RESERVED)


def test_a_poll_config_is_checked_the_way_the_poller_reads_it() -> None:
    assert rest({"items_path": "changes", "params": {"limit": 3}, "initial_cursor": 0}) == []
    assert rest({}) == []
    [params] = rest({"params": 5})
    assert params.startswith("config.params:")
    [path] = rest({"items_path": "changes["})
    assert path.startswith("config.items_path:") and "changes[" in path
    [typo] = rest({"item_path": "id"})
    assert "config.item_path" in typo and "Extra inputs" in typo
    assert rest({}, path="feed") == ["a polled REST source needs a path starting with '/'"]
    assert rest("not an object") == ["config must be a JSON object"]
    assert poll_config_problems({"params": {"nested": {"no": 1}}})


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("^orders-.*", "regex subscription"),
        ("orders feed", "not a Kafka topic name"),
        ("x" * 250, "not a Kafka topic name"),
        ("..", "not a Kafka topic name"),
        ("__consumer_offsets", "platform or internal"),
        ("integration.events", "platform or internal"),  # its own output
        ("integration-delivery.dlq", "platform or internal"),
        ("payments.anything", "platform or internal"),  # a platform namespace
        ("synapseops-__assignor-__leader", "platform or internal"),  # Faust's own
        (None, "needs kafka_topic"),
    ],
)
def test_a_kafka_source_may_not_read_what_is_not_a_users_topic(
    topic: str | None, reason: str
) -> None:
    problem = source_topic_problem(topic, RESERVED)
    assert problem is not None and reason in problem


def test_a_users_topic_is_fine_and_only_sources_are_checked() -> None:
    assert source_topic_problem("shop.orders-v2_raw", RESERVED) is None
    kafka = {"direction": "source", "kafka_topic": "shop.orders", "config": {}}
    assert source_endpoint_problems("kafka", kafka, RESERVED) == []
    forged = {**kafka, "config": {"event_id_header": "synapseops-event-id"}}
    [problem] = source_endpoint_problems("kafka", forged, RESERVED)
    assert "platform header" in problem
    target = {"direction": "target", "kafka_topic": "integration.events"}
    assert source_endpoint_problems("kafka", target, RESERVED) == []


def test_a_foreign_record_keeps_none_of_the_platforms_headers() -> None:
    assert is_platform_header("synapseops-attempt") and is_platform_header("Synapseops-Kind")
    assert is_platform_header("traceparent") and is_platform_header("tracestate")
    assert not is_platform_header("content-type") and not is_platform_header("ce_id")
    record = RoadRecord(
        "shop.orders",
        0,
        9,
        None,
        b"k",
        b"{}",
        [
            ("synapseops-attempt", b"3"),
            ("synapseops-error-kind", b"fatal"),
            ("synapseops-replay-id", b"rpl_x"),
            (kh.EVENT_ID, b"forged"),
            (kh.FLOW_ID, b"1"),
            (kh.TRACEPARENT, TRACE.encode()),
            ("tracestate", b"vendor=1"),
            (kh.CONTENT_TYPE, b"application/json"),
            ("x-tenant", b"a"),
        ],
    )
    headers = forwarded_headers(record, TopicSource("shop", "orders", "shop.orders"))
    names = [name for name, _ in headers]
    assert [n for n in names if n.startswith("synapseops-")] == [
        kh.EVENT_ID,
        kh.SOURCE,
        kh.CONNECTOR,
        kh.ENDPOINT,
    ]
    assert "tracestate" not in names and names.count(kh.TRACEPARENT) == 1
    mapped = dict(headers)
    assert mapped[kh.EVENT_ID] == b"shop.orders/0/9"
    assert mapped[kh.CONTENT_TYPE] == b"application/json" and mapped["x-tenant"] == b"a"
    # The trace is continued (same trace id, a new span), as the HTTP ingress does.
    trace = mapped[kh.TRACEPARENT].decode().split("-")
    assert trace[1] == TRACE.split("-")[1] and trace[2] != TRACE.split("-")[2]
    assert RoadRecord("t", 0, 0, None, None, None, headers).history.attempt == 0
