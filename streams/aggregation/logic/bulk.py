"""One line of a bulk upload (an NDJSON object, or a CSV row read as an object) as a canonical
event.

A line names its own ``id``, ``type`` and ``time`` (ISO 8601 with an offset, or Unix seconds),
optionally ``subject`` and ``severity``; every other field is kept: scalars in the flat
attributes, everything in the body.
"""

from __future__ import annotations

from typing import Any

from schemas.models import CanonicalEvent, LogBody
from streams.aggregation.logic.common import (
    SEVERITY_INFO,
    Context,
    as_json,
    canonical,
    fail,
    flat,
    parse_time,
    to_nanos,
)

NAME = "bulk"
VERSION = 1
ENVELOPE = ("id", "type", "time", "subject", "severity")
FIELD_MAPPING: dict[str, str] = {
    "id": "id",
    "type": "type",
    "time": "time, body.time_unix_nano",
    "subject": "subject",
    "severity (1-24)": "body.severity_number",
    "every other field": "body.body, scalar ones in attributes",
}


def transform(line: Any, context: Context) -> list[CanonicalEvent]:
    if not isinstance(line, dict):
        raise fail(NAME, f"a line is a JSON object, got {type(line).__name__}")
    missing = [name for name in ("id", "type", "time") if line.get(name) in (None, "")]
    if missing:
        raise fail(NAME, f"missing {', '.join(missing)}")
    occurred = parse_time(NAME, line["time"], "time")
    severity = line.get("severity", SEVERITY_INFO)
    try:
        severity = int(severity)
    except (TypeError, ValueError) as exc:
        raise fail(NAME, f"severity {severity!r} is not an integer") from exc
    data = {key: value for key, value in line.items() if key not in ENVELOPE}
    subject = line.get("subject")
    body = LogBody(
        time_unix_nano=to_nanos(occurred),
        observed_time_unix_nano=to_nanos(context.ingested_at),
        severity_number=severity,
        body=as_json(data),
        resource=as_json({"service.name": context.source}),
        event_name=str(line["type"]),
    )
    return [
        canonical(
            context,
            id=str(line["id"]),
            type=str(line["type"]),
            time=occurred,
            subject=str(subject) if subject not in (None, "") else None,
            attributes=flat(data),
            tags=["bulk"],
            body=body,
        )
    ]
