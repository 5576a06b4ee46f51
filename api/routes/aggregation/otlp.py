"""``POST /v1/logs``: the OTLP/HTTP logs receiver, JSON and protobuf encodings, as collectors
and SDK exporters send it (https://opentelemetry.io/docs/specs/otlp/#otlphttp).

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

A protobuf request (``Content-Type: application/x-protobuf``) is read into the OTLP/JSON shape
(:mod:`api.routes.aggregation.otlp_protobuf`) and checked by the same reader; every answer to
it is protobuf (``ExportLogsServiceResponse``, or ``google.rpc.Status`` for a failure).

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
from starlette.responses import JSONResponse, Response

from api.auth import Refused, authenticate
from api.deps import EngineDep, ProducerDep, SettingsDep
from api.ingress import parse_json_body
from api.routes.aggregation import otlp_protobuf
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


JSON = "application/json"


def _status(
    http: int, code: int, message: str, retry: bool = False, protobuf: bool = False
) -> Response:
    """A failed request's answer: ``google.rpc.Status``, in the request's encoding."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if retry else None
    if protobuf:
        body = otlp_protobuf.status(code, message)
        return Response(body, http, headers=headers, media_type=otlp_protobuf.MEDIA_TYPE)
    return JSONResponse({"code": code, "message": message}, http, headers=headers)


def _accepted(rejected: list[str], protobuf: bool) -> Response:
    """200: all accepted, or ``partialSuccess`` naming how many were rejected and the first."""
    message = f"{len(rejected)} log record(s) rejected; first: {rejected[0]}" if rejected else ""
    if protobuf:
        body = otlp_protobuf.response(len(rejected), message)
        return Response(body, 200, media_type=otlp_protobuf.MEDIA_TYPE)
    if not rejected:
        return JSONResponse({})
    return JSONResponse(
        {"partialSuccess": {"rejectedLogRecords": str(len(rejected)), "errorMessage": message}}
    )


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
) -> Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    protobuf = media == otlp_protobuf.MEDIA_TYPE
    try:
        source = await _source(request, settings, engine)
    except Refused as refused:
        code = UNAUTHENTICATED if refused.status_code == 401 else PERMISSION_DENIED
        if refused.status_code == 503:
            return _status(503, UNAVAILABLE, refused.reason, retry=True, protobuf=protobuf)
        return _status(refused.status_code, code, refused.reason, protobuf=protobuf)
    if source["paused"]:
        paused = f"data source {source['name']} is paused"
        return _status(503, UNAVAILABLE, paused, retry=True, protobuf=protobuf)
    if media not in (JSON, otlp_protobuf.MEDIA_TYPE, ""):
        unsupported = f"Content-Type {media!r}: send {JSON} or {otlp_protobuf.MEDIA_TYPE}"
        return _status(415, INVALID_ARGUMENT, unsupported)
    try:
        body = await request.body()
        export = otlp_protobuf.request_as_json(body) if protobuf else parse_json_body(body)
        records = list(otel.log_records(export))
    except (Undecodable, PayloadUntransformable) as exc:
        return _status(400, INVALID_ARGUMENT, str(exc), protobuf=protobuf)
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
        lost = "the event stream did not take every record"
        return _status(503, UNAVAILABLE, lost, retry=True, protobuf=protobuf)
    return _accepted(rejected, protobuf)
