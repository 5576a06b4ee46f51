"""``POST /v1/logs``: the OTLP/HTTP logs receiver (JSON encoding), as collectors and SDK
exporters send it (https://opentelemetry.io/docs/specs/otlp/#otlphttp).

Authentication: ``Authorization: Bearer <token>`` — a stream source's ingest token (the
source is the token's), or an API token whose role is operator or above, naming the source
in ``X-SynapseOps-Source`` (default ``otel``). Answers as OTLP says:

- 200 with ``{}`` when every log record was accepted; 200 with ``partialSuccess``
  (``rejectedLogRecords``, ``errorMessage``) when some could not be read (bad trace id, an
  unknown AnyValue, a time out of range): the others are accepted, the client must not retry;
- 400 with a ``google.rpc.Status``-shaped body when the request itself is not an export
  request; 415 for protobuf (not supported yet); 401/403 for credentials; 413 past the body
  cap; 503 with ``Retry-After`` while a source is paused or Kafka does not take the records
  (retryable: an exporter retries and the events de-duplicate on their id).

Every accepted log record is published alone (its resource and scope with it) to
``aggregation.raw``; the pipeline transforms it again there, so what is checked here is
exactly what is loaded.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from api.auth import Refused, authenticate
from api.deps import EngineDep, ProducerDep, SettingsDep
from api.ingress import parse_json_body
from sinks.aggregation.sources import get_source, source_by_token
from streams.aggregation.logic import otel
from streams.aggregation.logic.common import Context
from streams.aggregation.raw import raw_headers
from synapseops.errors import PayloadUntransformable, RecordNotFound, Undecodable
from synapseops.ids import child_traceparent, trace_id_of
from synapseops.kafka import Outgoing
from synapseops.principals import Role
from topics.registry import AGGREGATION_RAW

router = APIRouter(tags=["aggregation: OTLP"])
RETRY_AFTER_S = 5
DEFAULT_SOURCE = "otel"
# google.rpc.Code
INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE = 3, 16, 7, 14


def _status(http: int, code: int, message: str, retry: bool = False) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else None
    return JSONResponse({"code": code, "message": message}, http, headers=headers)


async def _source(request: Request, settings: Any, engine: Any) -> dict[str, Any]:
    header = request.headers.get("authorization")
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        found = await asyncio.to_thread(source_by_token, engine, token.strip())
        if found is not None:
            return found
    principal = await authenticate(header, settings.api.token.get_secret_value(), engine)
    if not principal.may(Role.OPERATOR):
        raise Refused(403, "ingesting logs needs a source's ingest token or the operator role")
    name = request.headers.get("x-synapseops-source") or DEFAULT_SOURCE
    try:
        return await asyncio.to_thread(get_source, engine, name)
    except RecordNotFound as exc:
        raise Refused(403, f"no data source named {name!r} to ingest into") from exc


@router.post("/v1/logs", response_model=None)
async def export_logs(
    request: Request, settings: SettingsDep, engine: EngineDep, producer: ProducerDep
) -> JSONResponse:
    try:
        source = await _source(request, settings, engine)
    except Refused as refused:
        code = UNAUTHENTICATED if refused.status_code == 401 else PERMISSION_DENIED
        if refused.status_code == 503:
            return _status(503, UNAVAILABLE, refused.reason, retry=True)
        return _status(refused.status_code, code, refused.reason)
    if source["paused"]:
        return _status(503, UNAVAILABLE, f"data source {source['name']} is paused", retry=True)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/x-protobuf":
        return _status(415, INVALID_ARGUMENT, "OTLP/HTTP protobuf is not supported; send JSON")
    try:
        export = parse_json_body(await request.body())
        records = list(otel.log_records(export))
    except (Undecodable, PayloadUntransformable) as exc:
        return _status(400, INVALID_ARGUMENT, str(exc))
    traceparent = child_traceparent(request.headers.get("traceparent"))
    context = Context(
        source=source["name"],
        source_type="stream",
        ingested_at=datetime.now(UTC),
        trace_id=trace_id_of(traceparent) or "",
    )
    sends: list[Outgoing] = []
    rejected: list[str] = []
    for resource, scope, record in records:
        try:
            event = otel.one(resource, scope, record, context)
        except (PayloadUntransformable, ValueError) as exc:
            rejected.append(str(exc))
            continue
        headers = raw_headers(
            source=source["name"],
            logic="otel",
            source_type="stream",
            event_id=event.id,
            event_type=event.type,
            traceparent=traceparent,
        )
        value = json.dumps(otel.single(resource, scope, record), separators=(",", ":")).encode()
        key = f"{source['name']}/{event.subject or event.id}".encode()
        sends.append(Outgoing(AGGREGATION_RAW.name, value, key=key, headers=headers))
    deliveries = await producer.send_many(sends)
    if any(isinstance(delivery, BaseException) for delivery in deliveries):
        return _status(503, UNAVAILABLE, "the event stream did not take every record", retry=True)
    if not rejected:
        return JSONResponse({})
    message = f"{len(rejected)} log record(s) rejected; first: {rejected[0]}"
    return JSONResponse(
        {"partialSuccess": {"rejectedLogRecords": str(len(rejected)), "errorMessage": message}}
    )
