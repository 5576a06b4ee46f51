"""A decoded canonical record as a ``warehouse.events`` row (pure).

Data written with v1/v2 of the schema has no OTel body: its flat attributes become the
row's ``attributes`` and the resource is empty. JSON text of the body stays text here;
PostgreSQL parses it into jsonb as it loads.
"""

from __future__ import annotations

import json
from typing import Any

from streams.aggregation.logic.common import as_json


def to_row(record: dict[str, Any], topic: str, partition: int, offset: int) -> dict[str, Any]:
    body = record.get("body") or {}
    attributes = body.get("attributes") if body else as_json(record.get("attributes") or {})
    return {
        "source": record["source"],
        "id": record["id"],
        "type": record["type"],
        "time": record["time"],
        "subject": record.get("subject"),
        "specversion": record.get("specversion", "1.0"),
        "source_type": record["source_type"],
        "ingested_at": record["ingested_at"],
        "actor_id": record.get("actor_id"),
        "trace_id": record["trace_id"],
        "tags": list(record.get("tags") or []),
        "raw_ref": record.get("raw_ref"),
        "time_unix_nano": body.get("time_unix_nano"),
        "observed_time_unix_nano": body.get("observed_time_unix_nano"),
        "severity_number": body.get("severity_number"),
        "severity_text": body.get("severity_text"),
        "body": body.get("body"),
        "resource": body.get("resource") or "{}",
        "attributes": attributes or "{}",
        "log_trace_id": body.get("trace_id"),
        "log_span_id": body.get("span_id"),
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }


def is_json(text: str | None) -> bool:
    """Whether ``text`` parses as JSON (a body that does not would fail the whole COPY)."""
    if text is None:
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
