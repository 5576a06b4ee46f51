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

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel

from api import metrics
from api.deps import ProducerDep, SettingsDep
from api.ingress import (
    SOURCE_PATTERN,
    InboundEvent,
    describe_event,
    describe_signed_event,
    is_valid_source,
    without_headers,
)
from api.webhooks import WebhookRoute, accept, http_error
from synapseops.errors import IngressRejected
from synapseops.settings import SourceAuth
from synapseops.signatures import verify_scheme, verify_token
from topics.registry import INBOUND_EVENTS

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class EventAccepted(BaseModel):
    event_id: str
    topic: str
    partition: int
    offset: int
    traceparent: str


class GenericWebhook(WebhookRoute):
    """An allowed source (``SYNAPSEOPS_INGRESS_SOURCES``) with its token or signature."""

    topic = INBOUND_EVENTS.name

    def __init__(self, source: str, auth: SourceAuth | None) -> None:
        self.source = source
        self.auth = auth
        self.valid = is_valid_source(source)
        # Only allowed sources get a label of their own: invented names cannot grow the metrics.
        self.label = metrics.source_label(source, valid=self.valid and auth is not None)

    async def prepare(self, request: Request) -> None:
        if not self.valid:
            raise IngressRejected(f"source must be a slug matching {SOURCE_PATTERN}")
        if self.auth is None:
            raise IngressRejected(
                f"unknown source {self.source!r}: only the sources of "
                "SYNAPSEOPS_INGRESS_SOURCES are taken",
                http_status=404,
            )
        if self.auth.scheme == "token":
            # Before the body is read: a request without the token costs nothing.
            verify_token(request.headers, self.auth.secrets, self.auth.header)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        assert self.auth is not None
        if self.auth.scheme != "token":
            verify_scheme(
                self.auth.scheme, body, headers, self.auth.secrets, header=self.auth.header
            )

    def describe(self, headers: Mapping[str, str], body: bytes, parsed: Any) -> InboundEvent:
        assert self.auth is not None
        if self.auth.scheme == "token":
            return describe_event(headers, parsed)
        return describe_signed_event(self.auth.scheme, headers, body, parsed)

    def travelling(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        # A token in a header of its own would otherwise travel in synapseops-http-headers.
        assert self.auth is not None
        return without_headers(headers, (self.auth.header,) if self.auth.header else ())


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
    # Validated in prepare(), not by Path(pattern=...), so a bad source is counted in the
    # ingress metrics and answered like every other ingress rejection (400 with a reason).
    source: Annotated[str, Path(description=f"who sent it, a slug matching {SOURCE_PATTERN}")],
    request: Request,
    settings: SettingsDep,
    producer: ProducerDep,
) -> EventAccepted:
    route = GenericWebhook(source, settings.ingress.sources.get(source))
    try:
        accepted = await accept(route, request, producer)
    except IngressRejected as exc:
        raise http_error(exc) from exc
    return EventAccepted(
        event_id=accepted.event.event_id,
        topic=accepted.topic,
        partition=accepted.partition,
        offset=accepted.offset,
        traceparent=accepted.event.traceparent,
    )
