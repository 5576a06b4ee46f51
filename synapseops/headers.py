"""Kafka header names, defined once. Every hop reads and writes them through these constants.

Ingress headers (on every record of ``synapseops.events.inbound`` and the service topics):

==============================  ==============================================================
``synapseops-event-id``          the source's own event id (Stripe ``evt_…``, Shopify
                                 ``X-Shopify-Webhook-Id``, HubSpot ``eventId``, CloudEvents
                                 ``source``+``id``); the de-duplication key
``synapseops-source``            who sent it (``stripe``, ``shopify``, ``github``, a connector)
``synapseops-event-type``        the source's event type, when it has one
``synapseops-received-at``       ingress time, RFC 3339 UTC with milliseconds
``synapseops-http-headers``      the HTTP request headers as received (JSON object), secrets removed
``content-type``                 the body's media type; the record value is the raw body bytes
``traceparent``                  W3C trace context stamped at ingress, carried by every hop
``synapseops-message-kind``      what the record is (``payments.stripe-event``,
                                 ``payments.settlement-command``, ...): stamped by whoever
                                 produces onto a pipeline input, kept on every retry tier, dead
                                 letter and replay; the road picks the record's handler by it
==============================  ==============================================================

The kinds an input topic may carry are declared with the topic (``TopicSpec.kinds`` in
``topics/registry.py``; the first is what a record without the header is). A kind names the
*message*, never the topic it happens to sit on: a record on a retry tier is still the
settlement command it was on ``payments.settlement.commands``.

API Integration adds (on ``integration.events``):

==============================  ==============================================================
``synapseops-connector``         the source connector's name (``shopify``)
``synapseops-endpoint``          the source endpoint's name (``orders/create``)
``synapseops-flow-id``           set when the record is meant for one flow only (a Kafka-topic
                                 source forwarded for its flow); absent → every matching flow
==============================  ==============================================================

The retry road adds its own headers (``synapseops-attempt`` …); they are listed in
``streams/road`` where they are written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from synapseops.redaction import scrub

EVENT_ID = "synapseops-event-id"
SOURCE = "synapseops-source"
EVENT_TYPE = "synapseops-event-type"
RECEIVED_AT = "synapseops-received-at"
HTTP_HEADERS = "synapseops-http-headers"
CONTENT_TYPE = "content-type"
TRACEPARENT = "traceparent"
CONNECTOR = "synapseops-connector"
ENDPOINT = "synapseops-endpoint"
FLOW_ID = "synapseops-flow-id"
MESSAGE_KIND = "synapseops-message-kind"

# HTTP headers never copied into Kafka or the database: they carry credentials.
SECRET_HTTP_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})

HeaderList = list[tuple[str, bytes]]


def to_map(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as ``{name: text}``; the last value wins when a name repeats."""
    result: dict[str, str] = {}
    for name, value in headers or ():
        result[name] = value.decode("utf-8", "replace") if value is not None else ""
    return result


def message_kind(headers: Iterable[tuple[str, bytes | None]] | None) -> str | None:
    """The ``synapseops-message-kind`` of a record (the last one wins), None if absent/empty."""
    found: str | None = None
    for name, value in headers or ():
        if name == MESSAGE_KIND:
            found = value.decode("utf-8", "replace").strip() if value else None
    return found or None


def with_kind(headers: Iterable[tuple[str, bytes]], kind: str) -> HeaderList:
    """``headers`` with ``kind`` as their one message kind, whatever kind they claimed before:
    a producer copying foreign headers must never pass another system's kind on."""
    kept = [(name, value) for name, value in headers if name != MESSAGE_KIND]
    return [*kept, (MESSAGE_KIND, kind.encode("utf-8"))]


def http_headers_json(headers: Mapping[str, str]) -> bytes:
    # Credentials are dropped; every other value is scrubbed of known secrets and token
    # shapes. Signatures stay: they prove the kept raw bytes, and prove nothing else.
    kept = {k.lower(): scrub(v) for k, v in headers.items() if k.lower() not in SECRET_HTTP_HEADERS}
    return json.dumps(kept, sort_keys=True).encode()
