"""OpenTelemetry logs (an OTLP/JSON ``ExportLogsServiceRequest``) as canonical events.

One canonical event per log record, keeping its resource and scope. OTLP/JSON traps handled
here: 64-bit integers (``timeUnixNano``, ``intValue``) arrive as decimal strings and are read
as ints, never floats; ``traceId``/``spanId`` are hex (lower-cased here); attribute values
are wrapped in their type (``stringValue``, ``kvlistValue``…) and come out as plain JSON.

A log record has no id of its own: the id is ``log.record.uid`` when the record carries it
(the semantic convention), else a digest of the record with its resource and scope — so an
export the collector retries is the same event again and is de-duplicated downstream.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Any

from schemas.models import CanonicalEvent, LogBody
from streams.aggregation.logic.common import (
    Context,
    as_json,
    canonical,
    fail,
    flat,
    from_nanos,
    to_nanos,
)

NAME = "otel"
VERSION = 1
FIELD_MAPPING: dict[str, str] = {
    "attributes[log.record.uid] or digest(resource, scope, record)": "id",
    "eventName": "type (otel.event.<name>), body.event_name",
    "timeUnixNano (else observedTimeUnixNano)": "time, body.time_unix_nano",
    "resource.attributes[service.name]": "subject",
    "severityNumber / severityText": "body.severity_number / body.severity_text",
    "body": "body.body",
    "resource.attributes": "body.resource",
    "attributes (+ scope name, version)": "body.attributes, scalar ones in attributes",
    "traceId / spanId": "body.trace_id / body.span_id",
}
_HEX = {32: re.compile(r"^[0-9a-f]{32}$"), 16: re.compile(r"^[0-9a-f]{16}$")}


def any_value(value: Any) -> Any:
    """An OTLP/JSON ``AnyValue`` as plain JSON (``intValue`` as an int, bytes as base64)."""
    if not isinstance(value, dict) or not value:
        return None
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "bytesValue" in value:
        return base64.b64encode(base64.b64decode(value["bytesValue"])).decode()
    if "arrayValue" in value:
        return [any_value(item) for item in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return key_values((value["kvlistValue"] or {}).get("values", []))
    raise ValueError(f"unknown AnyValue {sorted(value)}")


def key_values(pairs: Any) -> dict[str, Any]:
    """A list of ``{key, value}`` as a plain object."""
    if not isinstance(pairs, list):
        raise ValueError("attributes must be a list of {key, value}")
    return {str(pair["key"]): any_value(pair.get("value")) for pair in pairs}


def log_records(request: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Every ``(resource, scope, logRecord)`` of an export request, in order."""
    if not isinstance(request, dict):
        raise fail(NAME, "an export request is a JSON object")
    for resource_logs in request.get("resourceLogs") or []:
        resource = resource_logs.get("resource") or {}
        for scope_logs in resource_logs.get("scopeLogs") or []:
            scope = scope_logs.get("scope") or {}
            for record in scope_logs.get("logRecords") or []:
                yield resource, scope, record


def single(
    resource: dict[str, Any], scope: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    """An export request holding only this log record (what ingress publishes, one per record)."""
    return {
        "resourceLogs": [
            {"resource": resource, "scopeLogs": [{"scope": scope, "logRecords": [record]}]}
        ]
    }


def transform(request: Any, context: Context) -> list[CanonicalEvent]:
    """Every log record of the request; the first that cannot be read fails the whole."""
    return [
        one(resource, scope, record, context) for resource, scope, record in log_records(request)
    ]


def _hex(value: Any, size: int, field: str) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).lower()
    if not _HEX[size].match(text) or set(text) == {"0"}:
        raise fail(NAME, f"{field} {value!r} is not {size} hex digits (nor all zero)")
    return text


def _nanos(value: Any, field: str) -> int | None:
    if value in (None, "", "0", 0):
        return None
    try:
        nanos = int(value)
    except (TypeError, ValueError) as exc:
        raise fail(NAME, f"{field} {value!r} is not an integer of nanoseconds") from exc
    if not 0 < nanos < 2**63:
        raise fail(NAME, f"{field} {value!r} is out of range")
    return nanos


def one(
    resource: dict[str, Any], scope: dict[str, Any], record: dict[str, Any], context: Context
) -> CanonicalEvent:
    """One log record as a canonical event; :class:`PayloadUntransformable` with the reason."""
    if not isinstance(record, dict):
        raise fail(NAME, "a log record is a JSON object")
    try:
        resource_attrs = key_values(resource.get("attributes", []))
        attributes = key_values(record.get("attributes", []))
        body_value = any_value(record.get("body"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise fail(NAME, f"a value does not read as OTLP AnyValue: {exc}") from exc
    observed = _nanos(record.get("observedTimeUnixNano"), "observedTimeUnixNano")
    occurred = _nanos(record.get("timeUnixNano"), "timeUnixNano") or observed
    if occurred is None:
        occurred = to_nanos(context.ingested_at)
    severity = record.get("severityNumber", 0)
    if isinstance(severity, str) and severity.startswith("SEVERITY_NUMBER_"):
        raise fail(NAME, "severityNumber must be the integer in OTLP/JSON, not the enum name")
    if not isinstance(severity, int) or isinstance(severity, bool) or not 0 <= severity <= 24:
        raise fail(NAME, f"severityNumber {severity!r} is not 0-24")
    scope_info = {"otel.scope.name": scope.get("name"), "otel.scope.version": scope.get("version")}
    log_attributes = {**attributes, **{k: v for k, v in scope_info.items() if v}}
    uid = attributes.get("log.record.uid")
    event_id = (
        str(uid)
        if uid
        else hashlib.sha256(
            as_json({"resource": resource, "scope": scope, "record": record}).encode()
        ).hexdigest()[:32]
    )
    event_name = record.get("eventName") or None
    service = resource_attrs.get("service.name")
    body = LogBody(
        time_unix_nano=occurred,
        observed_time_unix_nano=to_nanos(context.ingested_at),
        severity_number=severity,
        severity_text=record.get("severityText") or None,
        body=None if body_value is None else as_json(body_value),
        resource=as_json(resource_attrs),
        attributes=as_json(log_attributes),
        trace_id=_hex(record.get("traceId"), 32, "traceId"),
        span_id=_hex(record.get("spanId"), 16, "spanId"),
        event_name=event_name,
    )
    return canonical(
        context,
        id=event_id,
        type=f"otel.event.{event_name}" if event_name else "otel.log",
        time=from_nanos(occurred),
        subject=service if isinstance(service, str) and service.strip() else None,
        attributes=flat(log_attributes),
        tags=["otel"],
        body=body,
    )
