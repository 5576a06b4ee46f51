"""``POST /webhooks/events/{source}``: the generic ingress, raw bytes to Kafka.

The contract (docs/ARCHITECTURE.md, reliability road 1–2): answer 202 only after the broker has the
record on all in-sync replicas; publish the body exactly as received (never re-serialised,
so signatures stay verifiable); key it by the business entity; stamp the event id, source,
type, receipt time, HTTP headers (secrets removed) and trace as Kafka headers.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel

from api import metrics
from api.deps import ProducerDep, SettingsDep
from api.ingress import (
    SOURCE_PATTERN,
    describe_event,
    is_valid_source,
    kafka_headers,
    parse_json_body,
)
from api.publish import publish_event, unavailable
from synapseops.errors import KafkaUnavailable, SchemaInvalid, Undecodable
from synapseops.ids import trace_id_of
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import INBOUND_EVENTS

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
log = get_logger(__name__)


class EventAccepted(BaseModel):
    event_id: str
    topic: str
    partition: int
    offset: int
    traceparent: str


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without buffering the excess.

    Content-Length is checked first (cheap, before reading); the stream is counted too,
    because chunked requests have no Content-Length and a client may lie about it.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject(source_label: str, outcome: str, code: int, reason: str) -> HTTPException:
    metrics.INGRESS_REQUESTS.labels(source=source_label, outcome=outcome).inc()
    return HTTPException(status_code=code, detail=reason)


@router.post(
    "/events/{source}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Accept any JSON event; 202 once it is durably in Kafka",
    responses={
        400: {"description": "empty body, not JSON, bad source, or no event id"},
        413: {"description": "body larger than SYNAPSEOPS_API_MAX_BODY_BYTES"},
        503: {"description": "Kafka did not take the event; retry after Retry-After seconds"},
    },
)
async def accept_event(
    # Validated in the handler, not by Path(pattern=...), so a bad source is counted in the
    # ingress metrics and answered like every other ingress rejection (400 with a reason).
    source: Annotated[str, Path(description=f"who sent it, a slug matching {SOURCE_PATTERN}")],
    request: Request,
    settings: SettingsDep,
    producer: ProducerDep,
) -> EventAccepted:
    started = time.perf_counter()
    valid_source = is_valid_source(source)
    label = metrics.source_label(source, valid=valid_source)
    try:
        return await _accept(source, valid_source, label, request, settings, producer)
    finally:
        metrics.INGRESS_LATENCY.labels(source=label).observe(time.perf_counter() - started)


async def _accept(
    source: str,
    valid_source: bool,
    label: str,
    request: Request,
    settings: Settings,
    producer: AsyncProducer,
) -> EventAccepted:
    if not valid_source:
        raise _reject(
            label, metrics.INVALID, 400, f"source must be a slug matching {SOURCE_PATTERN}"
        )
    try:
        body = await read_body(request, settings.api.max_body_bytes)
    except BodyTooLarge as exc:
        raise _reject(label, metrics.TOO_LARGE, 413, str(exc)) from exc
    try:
        parsed: Any = parse_json_body(body)
        event = describe_event(request.headers, parsed)
    except (Undecodable, SchemaInvalid) as exc:
        raise _reject(label, metrics.INVALID, 400, str(exc)) from exc

    coordinates = {
        "source": source,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "trace_id": trace_id_of(event.traceparent),
        "topic": INBOUND_EVENTS.name,
    }
    try:
        partition, offset = await publish_event(
            producer,
            INBOUND_EVENTS.name,
            body,
            key=event.entity_key.encode(),
            headers=kafka_headers(event, source, request.headers),
            label=label,
            log_fields=coordinates,
        )
    except KafkaUnavailable as exc:
        raise unavailable(exc) from exc
    return EventAccepted(
        event_id=event.event_id,
        topic=INBOUND_EVENTS.name,
        partition=partition,
        offset=offset,
        traceparent=event.traceparent,
    )
