"""Reading the canonical topic the way another team would: Confluent wire format decoded
independently (magic byte, 4-byte schema id, Avro body), with the schema file the id names."""

from __future__ import annotations

import io
import json
import struct
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from fastavro import parse_schema, schemaless_reader

from schemas.store import AVRO_DIR, schema_id
from topics.registry import CANONICAL_EVENTS

SCHEMAS = {
    schema_id(path.read_text()): parse_schema(json.loads(path.read_text()))
    for path in (AVRO_DIR / "canonical_event").glob("v*.avsc")
}


def decode(value: bytes) -> dict[str, Any]:
    magic, writer_id = struct.unpack(">BI", value[:5])
    assert magic == 0, "not Confluent wire format"
    return dict(schemaless_reader(io.BytesIO(value[5:]), SCHEMAS[writer_id]))


def end_offsets(bootstrap: str, topic: str = CANONICAL_EVENTS.name) -> dict[int, int]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "probe", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        ends = {}
        deadline = time.monotonic() + 60
        for partition in metadata.topics[topic].partitions:
            while True:  # a topic the worker just created may have no leader for a moment
                try:
                    _, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10
                    )
                    break
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            ends[partition] = high
        return ends
    finally:
        consumer.close()


Decoded = list[tuple[dict[str, Any], dict[str, bytes]]]


def read_canonical(
    bootstrap: str,
    start: dict[int, int],
    want: int,
    deadline_s: float = 60.0,
    done: Callable[[Decoded], bool] | None = None,
) -> Decoded:
    """Records of the canonical topic after ``start``, until ``want`` of them, ``done`` says
    so, or the deadline."""

    def decoded(raw: list[tuple[bytes, dict[str, bytes]]]) -> Decoded:
        return [(decode(value), headers) for value, headers in raw]

    until = (lambda raw: done(decoded(raw))) if done is not None else None
    return decoded(read_topic(bootstrap, CANONICAL_EVENTS.name, start, want, deadline_s, until))


def read_topic(
    bootstrap: str,
    topic: str,
    start: dict[int, int],
    want: int,
    deadline_s: float = 60.0,
    done: Callable[[list[tuple[bytes, dict[str, bytes]]]], bool] | None = None,
) -> list[tuple[bytes, dict[str, bytes]]]:
    """Raw values and headers of ``topic`` after ``start``, until ``want`` or the deadline."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "probe-read", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
    found: list[tuple[bytes, dict[str, bytes]]] = []
    deadline = time.monotonic() + deadline_s
    try:
        while len(found) < want and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            headers = {name: value or b"" for name, value in message.headers() or []}
            found.append((message.value() or b"", headers))
            if done is not None and done(found):
                break
        return found
    finally:
        consumer.close()
