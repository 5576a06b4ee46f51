"""``POST /webhooks/events/{source}``: the generic ingress, raw bytes to Kafka.

The contract (docs/ARCHITECTURE.md, reliability road 1–2): answer 202 only after the broker has the
record on all in-sync replicas; publish the body exactly as received (never re-serialised,
so signatures stay verifiable); key it by the business entity; stamp the event id, source,
type, receipt time, HTTP headers (secrets removed) and trace as Kafka headers.

Only the sources allowed in ``SYNAPSEOPS_INGRESS_SOURCES`` are taken, each with its own secret
(:class:`~synapseops.settings.SourceAuth`): an unknown source is 404 and a request without the
source's token or signature 401, both with the reason and nothing published. A token is
checked before the body is read; a signature needs the body. Where only the body is signed,
the event id and key come from it (:func:`api.ingress.describe_signed_event`).
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
    describe_signed_event,
    is_valid_source,
    kafka_headers,
    parse_json_body,
    without_headers,
)
from api.publish import publish_event, unavailable
from synapseops.errors import (
    BodyTooLarge,
    KafkaUnavailable,
    SchemaInvalid,
    SignatureInvalid,
    Undecodable,
)
from synapseops.ids import trace_id_of
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import SourceAuth
from synapseops.signatures import verify_scheme, verify_token
from topics.registry import INBOUND_EVENTS

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
log = get_logger(__name__)

# Outcome label of the ingress counter for a refused token or signature.
UNAUTHORIZED = "unauthorized"


class EventAccepted(BaseModel):
    event_id: str
    topic: str
    partition: int
    offset: int
    traceparent: str


async def read_body(request: Request) -> bytes:
    """The raw body; :class:`~api.body_limit.BodyTooLarge` past the cap of every route."""
    return await request.body()


def _reject(source_label: str, outcome: str, code: int, reason: str) -> HTTPException:
    metrics.INGRESS_REQUESTS.labels(source=source_label, outcome=outcome).inc()
    return HTTPException(status_code=code, detail=reason)


@router.post(
    "/events/{source}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Accept any JSON event; 202 once it is durably in Kafka",
    responses={
        400: {"description": "empty body, not JSON, bad source, or no event id"},
        401: {"description": "the source's token or signature is missing or wrong"},
        404: {"description": "not an allowed source (SYNAPSEOPS_INGRESS_SOURCES)"},
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
    auth = settings.ingress.sources.get(source)
    # Only allowed sources get a label of their own: invented names cannot grow the metrics.
    valid_source = is_valid_source(source)
    label = metrics.source_label(source, valid=valid_source and auth is not None)
    try:
        return await _accept(source, valid_source, auth, label, request, producer)
    finally:
        metrics.INGRESS_LATENCY.labels(source=label).observe(time.perf_counter() - started)


async def _accept(
    source: str,
    valid_source: bool,
    auth: SourceAuth | None,
    label: str,
    request: Request,
    producer: AsyncProducer,
) -> EventAccepted:
    if not valid_source:
        raise _reject(
            label, metrics.INVALID, 400, f"source must be a slug matching {SOURCE_PATTERN}"
        )
    if auth is None:
        raise _reject(
            label,
            metrics.INVALID,
            404,
            f"unknown source {source!r}: only the sources of SYNAPSEOPS_INGRESS_SOURCES are taken",
        )
    try:
        if auth.scheme == "token":
            verify_token(request.headers, auth.secrets, auth.header)
        body = await read_body(request)
        if auth.scheme != "token":
            verify_scheme(auth.scheme, body, request.headers, auth.secrets, header=auth.header)
    except BodyTooLarge as exc:
        raise _reject(label, metrics.TOO_LARGE, 413, exc.reason) from exc
    except SignatureInvalid as exc:
        raise _reject(label, UNAUTHORIZED, 401, exc.reason) from exc
    try:
        parsed: Any = parse_json_body(body)
        if auth.scheme == "token":
            event = describe_event(request.headers, parsed)
        else:
            event = describe_signed_event(auth.scheme, request.headers, body, parsed)
    except (Undecodable, SchemaInvalid) as exc:
        raise _reject(label, metrics.INVALID, 400, str(exc)) from exc
    # A token in a header of its own would otherwise travel in synapseops-http-headers.
    travelling = without_headers(request.headers, (auth.header,) if auth.header else ())

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
            headers=kafka_headers(event, source, travelling),
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
