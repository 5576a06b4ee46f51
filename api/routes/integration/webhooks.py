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
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

import sqlalchemy
from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel

from api import metrics
from api.deps import EngineDep, ProducerDep, SettingsDep
from api.ingress import InboundEvent, describe_signed_event
from api.webhooks import Accepted, WebhookRoute, accept, http_error
from sinks.integration.store import connector_by_name, get_row, load_credential
from sinks.integration.store import source_endpoint as find_source_endpoint
from sinks.integration.tables import connectors
from synapseops import headers as kh
from synapseops.errors import CredentialUnreadable, IngressRejected, RecordNotFound
from synapseops.kafka import Headers
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
        self._items: OrderedDict[tuple[str, str, str], Accepted] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> Accepted | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple[str, str, str], value: Accepted) -> None:
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


class ConnectorWebhook(WebhookRoute):
    """A connector's webhook source endpoint, signed with the endpoint's own secret."""

    topic = INTEGRATION_EVENTS.name

    def __init__(
        self, connector: str, endpoint: str, settings: Settings, engine: sqlalchemy.Engine
    ) -> None:
        self.source = self.connector = connector
        self.endpoint = endpoint
        self.settings = settings
        self.engine = engine
        self.label = metrics.connector_label(connector)
        self.scheme = "none"
        self.signature_header: str | None = None
        self.secret: str | None = None

    async def prepare(self, request: Request) -> None:
        connector = self.connector
        if connector in RESERVED_CONNECTORS:
            raise IngressRejected(f"{connector!r} is not a connector", http_status=404)
        try:
            row, self.secret = await asyncio.to_thread(
                _lookup, self.engine, self.settings, connector, self.endpoint
            )
        except RecordNotFound as exc:
            raise IngressRejected(str(exc), http_status=404) from exc
        except CredentialUnreadable as exc:
            log.error(
                "signing secret unreadable", extra={"connector": connector, "error": str(exc)}
            )
            raise IngressRejected(
                "the endpoint's signing secret is unreadable",
                http_status=500,
                outcome=metrics.UNAVAILABLE,
            ) from exc
        self.label = metrics.confirm_connector(connector)
        # Before the body is read: an endpoint nobody chose a scheme for takes nothing.
        self.scheme = chosen_scheme(row["signature_scheme"])
        self.signature_header = row["signature_header"]

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        secrets = [self.secret] if self.secret else []
        verify_scheme(self.scheme, body, headers, secrets, header=self.signature_header)

    def describe(self, headers: Mapping[str, str], body: bytes, parsed: Any) -> InboundEvent:
        return describe_signed_event(self.scheme, headers, body, parsed)

    def extra_headers(self) -> Headers:
        return [(kh.CONNECTOR, self.connector.encode()), (kh.ENDPOINT, self.endpoint.encode())]

    def seen(self, event: InboundEvent) -> Accepted | None:
        found = _recent.get((self.connector, self.endpoint, event.event_id))
        return None if found is None else replace(found, duplicate=True)

    def remember(self, accepted: Accepted) -> None:
        _recent.put((self.connector, self.endpoint, accepted.event.event_id), accepted)

    def log_fields(self, event: InboundEvent) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "endpoint": self.endpoint,
            **super().log_fields(event),
        }


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
    route = ConnectorWebhook(connector, endpoint, settings, engine)
    try:
        accepted = await accept(route, request, producer)
    except IngressRejected as exc:
        raise http_error(exc) from exc
    return ConnectorEventAccepted(
        event_id=accepted.event.event_id,
        connector=connector,
        endpoint=endpoint,
        topic=accepted.topic,
        partition=accepted.partition,
        offset=accepted.offset,
        traceparent=accepted.event.traceparent,
        duplicate=accepted.duplicate,
    )
