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

The ingress headers are written in one place and read in one place: :func:`ingress_headers`
is what every producer onto a pipeline input stamps (the webhook routes, the API's commands,
the REST pollers, the Kafka-topic forwarders), :class:`IngressHeaders` is how every pipeline
reads them back (with one fallback each: the received-at time falls back to the record's
timestamp, the HTTP headers to none).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from synapseops.errors import SchemaInvalid
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


def received_at_now() -> str:
    """RFC 3339 UTC with milliseconds, the ``synapseops-received-at`` format."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ingress_headers(
    *,
    event_id: str,
    source: str,
    traceparent: str,
    received_at: str | None = None,
    event_type: str | None = None,
    http_headers: Mapping[str, str] | None = None,
    content_type: str | None = "application/json",
    connector: str | None = None,
    endpoint: str | None = None,
) -> HeaderList:
    """The ingress headers of one record, in the order every producer writes them.

    ``http_headers`` are the request's, kept as :func:`http_headers_json` keeps them;
    ``connector``/``endpoint`` route an ``integration.events`` record to its flows;
    ``content_type=None`` leaves the media type to headers the caller keeps (a forwarded
    record's own).
    """
    result: HeaderList = [(EVENT_ID, event_id.encode()), (SOURCE, source.encode())]
    if event_type is not None:
        result.append((EVENT_TYPE, event_type.encode()))
    if received_at is not None:
        result.append((RECEIVED_AT, received_at.encode()))
    if http_headers is not None:
        result.append((HTTP_HEADERS, http_headers_json(http_headers)))
    if content_type is not None:
        result.append((CONTENT_TYPE, content_type.encode()))
    result.append((TRACEPARENT, traceparent.encode()))
    if connector is not None:
        result.append((CONNECTOR, connector.encode()))
    if endpoint is not None:
        result.append((ENDPOINT, endpoint.encode()))
    return result


@dataclass(frozen=True)
class IngressHeaders:
    """The ingress headers of one consumed record, as text (the last value of a name wins).

    Build with :meth:`read`; ``values`` keeps every header of the record, ingress or not.
    """

    values: Mapping[str, str]

    @classmethod
    def read(cls, headers: Iterable[tuple[str, bytes | None]] | None) -> IngressHeaders:
        return cls(to_map(headers))

    def get(self, name: str) -> str | None:
        """The header's text, ``None`` when absent or blank."""
        value = self.values.get(name)
        return value if value and value.strip() else None

    @property
    def event_id(self) -> str | None:
        return self.get(EVENT_ID)

    @property
    def source(self) -> str | None:
        return self.get(SOURCE)

    @property
    def event_type(self) -> str | None:
        return self.get(EVENT_TYPE)

    @property
    def traceparent(self) -> str | None:
        return self.get(TRACEPARENT)

    @property
    def content_type(self) -> str | None:
        return self.get(CONTENT_TYPE)

    @property
    def connector(self) -> str | None:
        return self.get(CONNECTOR)

    @property
    def endpoint(self) -> str | None:
        return self.get(ENDPOINT)

    @property
    def flow_id(self) -> str | None:
        return self.get(FLOW_ID)

    def http_headers(self) -> dict[str, Any] | None:
        """The request's HTTP headers (a JSON object), credentials dropped once more in case
        a producer other than ingress kept them; ``None`` when absent or not an object."""
        raw = self.values.get(HTTP_HEADERS)
        if not raw:
            return None
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return None
        if not isinstance(parsed, dict):
            return None
        return {k: v for k, v in parsed.items() if str(k).lower() not in SECRET_HTTP_HEADERS}

    def received_at(self, timestamp_ms: int | None) -> datetime:
        """When ingress took the record: its ``synapseops-received-at`` (RFC 3339; a time
        without zone is UTC), else the record's timestamp. :class:`SchemaInvalid` when
        neither is a usable time (a producer may stamp any int64; past year 9999 it is no
        time at all)."""
        text = self.values.get(RECEIVED_AT)
        if text:
            try:
                parsed = datetime.fromisoformat(text.strip())
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if timestamp_ms is not None and timestamp_ms > 0:
            try:
                return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
            except (ValueError, OverflowError, OSError):
                pass
        raise SchemaInvalid(f"no usable {RECEIVED_AT} header and no record timestamp")


# Data Aggregation adds (on ``aggregation.raw`` and ``market.ticks``; ``synapseops-source``
# is the DataSource's name there):
#
# ``synapseops-aggregation-logic``   the TransformationLogic the payload goes through (github,
#                                    otel, market, bulk); absent on market.ticks → market
# ``synapseops-source-type``         how it came in: api_polling | stream | bulk_upload | webhook
# ``synapseops-aggregation-job``     the IngestionJob a record belongs to (a poll cycle, an
#                                    upload), when there is one
AGGREGATION_LOGIC = "synapseops-aggregation-logic"
SOURCE_TYPE = "synapseops-source-type"
AGGREGATION_JOB = "synapseops-aggregation-job"
