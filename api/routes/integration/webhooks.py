"""``POST /webhooks/{connector}/{endpoint}``: a connector's webhook source, raw bytes to Kafka.

The endpoint (``orders/create`` may hold a slash) is looked up among the connector's source
endpoints (404 unknown), its signature scheme is verified over the raw bytes with the
endpoint's signing secret (401 with the reason, nothing published), and the body is published
untouched to ``integration.events``, keyed by the entity, with the ingress headers of
:mod:`api.ingress` plus the connector and endpoint. 202 only once the broker has it (acks=all).

The endpoint must have chosen its scheme: NULL (never chosen) is refused with 401 and the
reason; ``none`` (chosen explicitly) accepts unsigned deliveries and the endpoint's API answers
carry a warning. The event id comes from the signed content only
(:func:`api.ingress.describe_signed_event`): Standard Webhooks' signed ``webhook-id``, else the
SHA-256 of the signed body — Shopify's ``X-Shopify-Webhook-Id`` is outside its HMAC, so it is
kept among the HTTP headers but never trusted as the id. The delivery pipeline de-duplicates on
it (one succeeded Run per flow and event); an id this process has already published is
answered again without publishing a second copy.

``/webhooks/events/{source}`` stays the generic ingress: this router is included after it, and
a connector named ``events`` is refused here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from typing import Annotated, Any

import sqlalchemy
from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel

from api import metrics
from api.deps import EngineDep, ProducerDep, SettingsDep
from api.ingress import describe_signed_event, kafka_headers, parse_json_body
from api.publish import publish_event, unavailable
from api.routes.event_log.webhooks import UNAUTHORIZED, read_body
from sinks.integration.store import connector_by_name, get_row, load_credential
from sinks.integration.store import source_endpoint as find_source_endpoint
from sinks.integration.tables import connectors
from synapseops import headers as kh
from synapseops.errors import (
    BodyTooLarge,
    CredentialUnreadable,
    KafkaUnavailable,
    RecordNotFound,
    SchemaInvalid,
    SignatureInvalid,
    Undecodable,
)
from synapseops.ids import trace_id_of
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from synapseops.signatures import chosen_scheme, verify_scheme
from topics.registry import INTEGRATION_EVENTS

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
log = get_logger(__name__)

RESERVED_CONNECTORS = frozenset({"events"})
# Delivery ids already published by this process (a source's quick redelivery is answered
# without a second record); the pipeline's de-duplication is the guarantee, this is economy.
RECENT_DELIVERIES = 10_000


class ConnectorEventAccepted(BaseModel):
    event_id: str
    connector: str
    endpoint: str
    topic: str
    partition: int
    offset: int
    traceparent: str
    duplicate: bool = False


class _Recent:
    def __init__(self, size: int) -> None:
        self._items: OrderedDict[tuple[str, str, str], ConnectorEventAccepted] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> ConnectorEventAccepted | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple[str, str, str], value: ConnectorEventAccepted) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_recent = _Recent(RECENT_DELIVERIES)


UNSIGNED_WARNING = (
    "signature_scheme is 'none': this webhook source accepts unsigned deliveries, so anyone "
    "who knows its URL can inject events; choose shopify, standard_webhooks or hmac_hex"
)


def endpoint_warnings(direction: str, scheme: str | None) -> list[str]:
    """What the endpoint API says alongside an endpoint (issue 8: ``none`` is shown)."""
    return [UNSIGNED_WARNING] if direction == "source" and scheme == "none" else []


def signature_choice_missing(
    engine: sqlalchemy.Engine, connector_id: int, direction: str, scheme: str | None
) -> str | None:
    """The reason a new endpoint must name its scheme (a webhook connector's source that
    names none), else None. Blocking; the connector's absence is the store's 409."""
    if direction != "source" or scheme is not None:
        return None
    try:
        connector = get_row(engine, connectors, connector_id)
    except RecordNotFound:
        return None
    if connector["protocol"] != "webhook":
        return None
    return (
        "a webhook source must choose signature_scheme: shopify, standard_webhooks, hmac_hex, "
        "or 'none' explicitly to accept unsigned deliveries"
    )


def _lookup(
    engine: sqlalchemy.Engine, settings: Settings, connector: str, endpoint: str
) -> tuple[dict[str, Any], str | None]:
    """The source endpoint and its clear signing secret (blocking)."""
    if connector_by_name(engine, connector)["protocol"] != "webhook":
        raise RecordNotFound(f"connector {connector!r} does not receive webhooks")
    row = find_source_endpoint(engine, connector, endpoint)
    secret = None
    if row["secret_credential_id"] is not None:
        credential = load_credential(engine, settings, int(row["secret_credential_id"]))
        secret = credential.secret.get_secret_value()
    return row, secret


@router.post(
    "/{connector}/{endpoint:path}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="A connector's webhook source endpoint; 202 once the event is durably in Kafka",
    responses={
        400: {"description": "empty body, not JSON, or no delivery id"},
        401: {"description": "signature missing or wrong; nothing was published"},
        404: {"description": "no such connector/source endpoint"},
        413: {"description": "body larger than SYNAPSEOPS_API_MAX_BODY_BYTES"},
        503: {"description": "Kafka did not take the event; retry after Retry-After seconds"},
    },
)
async def accept_connector_event(
    connector: Annotated[str, Path(description="the connector's name, e.g. shopify")],
    endpoint: Annotated[str, Path(description="the source endpoint, e.g. orders/create")],
    request: Request,
    settings: SettingsDep,
    producer: ProducerDep,
    engine: EngineDep,
) -> ConnectorEventAccepted:
    started = time.perf_counter()
    label = metrics.connector_label(connector)
    try:
        return await _accept(connector, endpoint, label, request, settings, producer, engine)
    finally:
        metrics.INGRESS_LATENCY.labels(source=label).observe(time.perf_counter() - started)


def _reject(label: str, outcome: str, code: int, reason: str) -> HTTPException:
    metrics.INGRESS_REQUESTS.labels(source=label, outcome=outcome).inc()
    return HTTPException(status_code=code, detail=reason)


async def _accept(
    connector: str,
    endpoint: str,
    label: str,
    request: Request,
    settings: Settings,
    producer: AsyncProducer,
    engine: sqlalchemy.Engine,
) -> ConnectorEventAccepted:
    if connector in RESERVED_CONNECTORS:
        raise _reject(label, metrics.INVALID, 404, f"{connector!r} is not a connector")
    try:
        row, secret = await asyncio.to_thread(_lookup, engine, settings, connector, endpoint)
    except RecordNotFound as exc:
        raise _reject(label, metrics.INVALID, 404, str(exc)) from exc
    except CredentialUnreadable as exc:
        log.error("signing secret unreadable", extra={"connector": connector, "error": str(exc)})
        raise _reject(
            label, "unavailable", 500, "the endpoint's signing secret is unreadable"
        ) from exc
    label = metrics.confirm_connector(connector)
    try:
        # Before the body is read: an endpoint nobody chose a scheme for takes nothing.
        scheme = chosen_scheme(row["signature_scheme"])
        body = await read_body(request)
        verify_scheme(
            scheme,
            body,
            request.headers,
            [secret] if secret else [],
            header=row["signature_header"],
        )
    except BodyTooLarge as exc:
        raise _reject(label, metrics.TOO_LARGE, 413, exc.reason) from exc
    except SignatureInvalid as exc:
        raise _reject(label, UNAUTHORIZED, 401, exc.reason) from exc
    try:
        event = describe_signed_event(scheme, request.headers, body, parse_json_body(body))
    except (Undecodable, SchemaInvalid) as exc:
        raise _reject(label, metrics.INVALID, 400, str(exc)) from exc

    seen_key = (connector, endpoint, event.event_id)
    seen = _recent.get(seen_key)
    if seen is not None:
        metrics.INGRESS_REQUESTS.labels(source=label, outcome="duplicate").inc()
        return seen.model_copy(update={"duplicate": True})

    headers = kafka_headers(event, connector, request.headers)
    headers += [(kh.CONNECTOR, connector.encode()), (kh.ENDPOINT, endpoint.encode())]
    coordinates = {
        "connector": connector,
        "endpoint": endpoint,
        "event_id": event.event_id,
        "trace_id": trace_id_of(event.traceparent),
        "topic": INTEGRATION_EVENTS.name,
    }
    try:
        partition, offset = await publish_event(
            producer,
            INTEGRATION_EVENTS.name,
            body,
            key=event.entity_key.encode(),
            headers=headers,
            label=label,
            log_fields=coordinates,
        )
    except KafkaUnavailable as exc:
        raise unavailable(exc) from exc
    accepted = ConnectorEventAccepted(
        event_id=event.event_id,
        connector=connector,
        endpoint=endpoint,
        topic=INTEGRATION_EVENTS.name,
        partition=partition,
        offset=offset,
        traceparent=event.traceparent,
    )
    _recent.put(seen_key, accepted)
    return accepted
