"""What a Kafka-topic source reads and what it forwards: the valid source endpoints of each
topic (from PostgreSQL) and the headers of a forwarded record (pure); see
``streams/integration/kafka_source.py`` for the forwarder that uses them.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass

import sqlalchemy

from sinks.integration.sources import enabled_source_endpoints
from streams.integration.source_config import (
    KafkaSourceConfig,
    ReservedTopics,
    is_platform_header,
    source_endpoint_problems,
)
from streams.road.headers import FailureHistory
from streams.road.record import RoadRecord
from synapseops import headers as kh
from synapseops.ids import child_traceparent
from topics.registry import INTEGRATION_DELIVERY

MAX_EVENT_ID_CHARS = 200


@dataclass(frozen=True)
class TopicSource:
    connector: str
    endpoint: str
    topic: str
    event_id_header: str | None = None


def topic_sources(
    engine: sqlalchemy.Engine, reserved: ReservedTopics
) -> tuple[dict[str, list[TopicSource]], dict[str, list[str]]]:
    """Topic → the valid source endpoints reading it (with at least one enabled flow), and
    ``connector/endpoint`` → the problems of each invalid one (skipped)."""
    found: dict[str, list[TopicSource]] = {}
    invalid: dict[str, list[str]] = {}
    for row in enabled_source_endpoints(engine, "kafka"):
        if row["kafka_topic"] is None:
            # Without a topic there is nothing to read (records may be produced for it
            # directly); a named topic is checked below.
            continue
        where = f"{row['connector']}/{row['name']}"
        problems = source_endpoint_problems("kafka", row, reserved)
        if problems:
            invalid[where] = problems
            continue
        config = KafkaSourceConfig.model_validate(dict(row["config"] or {}))
        source = TopicSource(
            str(row["connector"]), str(row["name"]), str(row["kafka_topic"]), config.event_id_header
        )
        found.setdefault(source.topic, []).append(source)
    return found, invalid


def forwarded_headers(record: RoadRecord, source: TopicSource) -> list[tuple[str, bytes]]:
    """The record's own headers minus every platform header, plus ours (pure)."""
    kept = [(name, value) for name, value in record.headers if not is_platform_header(name)]
    event_id = _own_event_id(record, source) or (
        f"{record.topic}/{record.partition}/{record.offset}"
    )
    foreign_trace = record.header(kh.TRACEPARENT)
    traceparent = child_traceparent(foreign_trace.decode("latin-1") if foreign_trace else None)
    return [
        *kept,
        *kh.ingress_headers(
            event_id=event_id,
            source=source.connector,
            traceparent=traceparent,
            content_type=None,  # the record's own, kept above
            connector=source.connector,
            endpoint=source.endpoint,
        ),
    ]


def _own_event_id(record: RoadRecord, source: TopicSource) -> str | None:
    if source.event_id_header is None:
        return None
    raw = record.header(source.event_id_header)
    try:
        text = raw.decode("utf-8").strip() if raw else ""
    except UnicodeDecodeError:
        return None
    return text if text and len(text) <= MAX_EVENT_ID_CHARS else None


def dead_letter_headers(
    record: RoadRecord, source: TopicSource, exc: BaseException
) -> list[tuple[str, bytes]]:
    """A forwarded record's headers plus the road's history of one fatal failure, as the
    delivery pipeline's dead letter carries them (a replay then delivers it to its flows)."""
    history = FailureHistory(other=tuple(forwarded_headers(record, source)))
    return history.after_failure(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp_ms,
        pipeline=INTEGRATION_DELIVERY,
        kind="fatal",
        error=exc,
        trace="".join(traceback.format_exception(exc)),
        now_ms=int(time.time() * 1000),
        not_before_ms=None,
        retries=0,
    ).to_headers()
