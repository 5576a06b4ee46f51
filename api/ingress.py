"""What the generic webhook ingress knows about a request, as pure functions (no I/O).

The route in ``api/routes/event_log/webhooks.py`` reads the raw body, calls :func:`describe_event`
and publishes the *original bytes* with the headers of :func:`kafka_headers`. Keeping the
decisions here lets them be tested without a server, a broker or a database.

Where each field comes from (first match wins; header names are case-insensitive):

=============  ==========================================================================
event id       ``Idempotency-Key``, ``X-Event-Id``, CloudEvents ``ce-id`` (as
               ``<ce-source>/<ce-id>`` when ``ce-source`` is sent), the providers' own
               delivery ids (``X-Shopify-Webhook-Id``, ``X-GitHub-Delivery``), else the
               body's top-level ``id`` (string or integer); none of them → rejected
entity key     ``X-Entity-Key``, else the body's top-level ``id``, else the event id
event type     ``X-Event-Type``, ``ce-type``, ``X-Shopify-Topic``, ``X-GitHub-Event``, else
               the body's top-level ``type`` (string); may be absent
trace          a valid incoming ``traceparent`` is continued (same trace id, new span),
               otherwise a new trace is started
=============  ==========================================================================

That table holds when the *whole request* is the authenticated sender's (a source token, a
management client). When only the body is signed (Shopify's and hex HMACs, or an unsigned
``none`` endpoint), :func:`describe_signed_event` applies instead: a header outside the
signature could be swapped by anyone who replays a captured delivery, and a de-duplication id
taken from it would let them get a signed body processed twice (new id) or suppress a real
event (pre-sent id). So the id is the signed one — Standard Webhooks' ``webhook-id`` is part
of the signed content — or else ``sha256:<hex>`` of the signed body: a provider's redelivery
is byte-identical and collapses onto it; two different bodies are two events. The entity key
is the body's ``id``, never ``X-Entity-Key``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from synapseops import headers as kh
from synapseops.errors import SchemaInvalid, Undecodable
from synapseops.headers import received_at_now
from synapseops.ids import child_traceparent

# A source names a URL segment, a metric label and a database value: keep it boring.
SOURCE_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,62})$"
_SOURCE = re.compile(SOURCE_PATTERN)

# Ids travel in Kafka headers and a unique index; a megabyte "id" is an attack, not an id.
MAX_ID_LENGTH = 512

_EVENT_ID_HEADERS = ("idempotency-key", "x-event-id")
_PROVIDER_EVENT_ID_HEADERS = ("x-shopify-webhook-id", "x-github-delivery")
_EVENT_TYPE_HEADERS = ("x-event-type", "ce-type", "x-shopify-topic", "x-github-event")
DEFAULT_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class InboundEvent:
    """What ingress decided about one request; the body itself is published untouched."""

    event_id: str
    entity_key: str
    event_type: str | None
    traceparent: str
    received_at: str


def is_valid_source(source: str) -> bool:
    return bool(_SOURCE.match(source))


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity, which are not JSON; a consumer in another language
    # would choke on the very bytes we promised were JSON.
    raise ValueError(f"{name} is not valid JSON")


# msgspec decodes a webhook body in a third of json.loads's time, with the same values (ints
# exact, floats correctly rounded, the last of duplicate keys). It is the fast path only:
# json.loads is the reference and decides every body msgspec refuses (NaN, 1e400, a BOM,
# UTF-16/32, lone surrogate escapes, deep nesting, bad JSON), so the bodies accepted and the
# reason given for the rest stay json's (tests/unit/test_api_ingress.py holds them equal).
_FAST = msgspec.json.Decoder()


def parse_json_body(body: bytes) -> Any:
    """The body as JSON, or :class:`Undecodable` with a reason a sender can act on."""
    if not body.strip():
        raise Undecodable("empty body: a JSON document is required")
    try:
        return _FAST.decode(body)
    except Exception:  # noqa: BLE001 - whatever msgspec refuses, json.loads decides
        pass
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise Undecodable("body is not JSON: nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise Undecodable(f"body is not JSON: {exc}") from exc


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value.strip() for name, value in headers.items()}


def _first_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = headers.get(name)
        if value:
            return value
    return None


def body_id(body: Any) -> str | None:
    """The body's top-level ``id`` as text when it is a non-empty string or an integer."""
    if not isinstance(body, dict):
        return None
    value = body.get("id")
    # bool is an int in Python; ``"id": true`` is not an id.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def event_id_from(headers: Mapping[str, str], body: Any) -> str | None:
    lowered = _lowered(headers)
    explicit = _first_header(lowered, _EVENT_ID_HEADERS)
    if explicit:
        return explicit
    ce_id = lowered.get("ce-id")
    if ce_id:
        ce_source = lowered.get("ce-source")
        # CloudEvents ids are unique per source only.
        return f"{ce_source}/{ce_id}" if ce_source else ce_id
    return _first_header(lowered, _PROVIDER_EVENT_ID_HEADERS) or body_id(body)


def entity_key_from(headers: Mapping[str, str], body: Any, event_id: str) -> str:
    return _lowered(headers).get("x-entity-key") or body_id(body) or event_id


def event_type_from(headers: Mapping[str, str], body: Any) -> str | None:
    from_header = _first_header(_lowered(headers), _EVENT_TYPE_HEADERS)
    if from_header:
        return from_header
    if isinstance(body, dict):
        value = body.get("type")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def describe_event(headers: Mapping[str, str], body: Any) -> InboundEvent:
    """Event id, entity key, type and trace of one request; :class:`SchemaInvalid` if unusable."""
    event_id = event_id_from(headers, body)
    if event_id is None:
        raise SchemaInvalid(
            "no event id: send an Idempotency-Key, X-Event-Id or ce-id header, "
            "or a top-level 'id' in the body"
        )
    return _inbound(event_id, entity_key_from(headers, body, event_id), headers, body)


def _inbound(event_id: str, entity_key: str, headers: Mapping[str, str], body: Any) -> InboundEvent:
    for name, value in (("event id", event_id), ("entity key", entity_key)):
        if len(value) > MAX_ID_LENGTH:
            raise SchemaInvalid(f"{name} longer than {MAX_ID_LENGTH} characters")
    return InboundEvent(
        event_id=event_id,
        entity_key=entity_key,
        event_type=event_type_from(headers, body),
        traceparent=child_traceparent(_lowered(headers).get("traceparent")),
        received_at=received_at_now(),
    )


def kafka_headers(
    event: InboundEvent, source: str, http_headers: Mapping[str, str]
) -> list[tuple[str, bytes]]:
    """The record headers of ``synapseops/headers.py`` for an accepted event."""
    return kh.ingress_headers(
        event_id=event.event_id,
        source=source,
        event_type=event.event_type,
        received_at=event.received_at,
        http_headers=http_headers,
        content_type=_lowered(http_headers).get("content-type") or DEFAULT_CONTENT_TYPE,
        traceparent=event.traceparent,
    )


def body_digest_id(body: bytes) -> str:
    """The de-duplication id of a body whose bytes are all that is signed."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def describe_signed_event(
    scheme: str, headers: Mapping[str, str], body: bytes, parsed: Any
) -> InboundEvent:
    """Event id and key from the signed content only (see the module docstring).

    ``scheme`` is the one the request was verified with; for ``standard_webhooks`` the
    ``webhook-id`` header is covered by the signature, for every other scheme nothing but
    the body is. :class:`SchemaInvalid` when the id is unusable.
    """
    if scheme == "standard_webhooks":
        event_id = _lowered(headers).get("webhook-id") or ""
        if not event_id:
            raise SchemaInvalid("no webhook-id header")
    else:
        event_id = body_digest_id(body)
    return _inbound(event_id, body_id(parsed) or event_id, headers, parsed)


def without_headers(headers: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """``headers`` less ``names`` (case-insensitive): a source's token never travels on."""
    dropped = {name.lower() for name in names}
    return {name: value for name, value in headers.items() if name.lower() not in dropped}
