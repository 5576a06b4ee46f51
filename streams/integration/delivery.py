"""The delivery of one source event through one flow, as pure functions (no I/O).

A record of ``integration.events`` carries the raw source body and, in its headers, the source
event id, connector and endpoint (:mod:`synapseops.headers`). For each flow of that endpoint
the pipeline maps the body and sends the output to the flow's target; this module decides
everything about that request so it can be tested without a broker, database or target:

- :func:`source_event` reads what the record says about itself (:class:`SchemaInvalid` when
  it cannot say which event it is: such a record can never be delivered, nor de-duplicated);
- :func:`map_body` decodes with numbers kept exact and applies the mapping
  (:class:`~streams.mapping.MappingFailed` names every failed rule; fatal);
- :func:`idempotency_key` is a pure function of (flow, source event id), so a redelivered
  event, a retry tier, a dead-letter replay and a re-run all send the *same* key and the
  target creates one record;
- :func:`build_request` assembles method, path, headers (credential, key, trace) and body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.mapping import CompiledMapping, dump_output, load_payload
from streams.road.headers import ROAD_HEADERS
from streams.road.record import RoadRecord
from synapseops import headers as kh
from synapseops.errors import SchemaInvalid

IDEMPOTENCY_HEADER = "Idempotency-Key"
JSON_CONTENT_TYPE = "application/json"
# Headers a flow's static target headers may not override: they carry the delivery's
# identity, its credential and its trace, which the pipeline owns.
_RESERVED_HEADERS = frozenset({"idempotency-key", "traceparent", "content-type"})


@dataclass(frozen=True)
class SourceEvent:
    """One source event, the body raw bytes exactly as received: what the delivery pipeline
    reads off a record (:func:`source_event`), what a Run keeps for re-runs and what a re-run
    reads back (:func:`sinks.integration.runs.load_source`) — one record under one name."""

    event_id: str
    connector: str
    endpoint: str
    body: bytes
    entity_key: str | None = None
    event_type: str | None = None
    traceparent: str | None = None
    # Set when the record is meant for one flow only (Kafka-topic sources, re-runs).
    flow_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str | None:
        """The body's media type as the source gave it (``None`` when it gave none)."""
        return self.headers.get(kh.CONTENT_TYPE)


def source_event(record: RoadRecord) -> SourceEvent:
    """What ``record`` (of ``integration.events``) says about itself.

    Raises :class:`SchemaInvalid` without an event id, connector or endpoint header.
    """
    ingress = kh.IngressHeaders.read(record.headers)
    found = ingress.values
    missing = [name for name in (kh.EVENT_ID, kh.CONNECTOR, kh.ENDPOINT) if not found.get(name)]
    if missing:
        raise SchemaInvalid(f"integration event without header(s) {', '.join(missing)}")
    return SourceEvent(
        event_id=found[kh.EVENT_ID],
        connector=found[kh.CONNECTOR],
        endpoint=found[kh.ENDPOINT],
        body=record.value or b"",
        entity_key=record.key.decode("utf-8", "replace") if record.key else None,
        event_type=ingress.event_type,
        traceparent=ingress.traceparent,
        flow_id=ingress.flow_id,
        headers={k: v for k, v in found.items() if k not in ROAD_HEADERS},
    )


def map_body(mapping: CompiledMapping, body: bytes) -> dict[str, Any]:
    """The mapping's output for ``body``.

    Raises :class:`~synapseops.errors.Undecodable` for a body that is not JSON and
    :class:`~streams.mapping.MappingFailed` (fatal, naming each failed rule) otherwise.
    """
    return mapping.apply(load_payload(body)).raise_for_errors()


def idempotency_key(flow_id: object, event_id: str) -> str:
    """The ``Idempotency-Key`` of delivering source event ``event_id`` through flow ``flow_id``.

    A digest, not the raw id: source ids may be long or hold characters a target refuses in
    a header; the flow id stays readable so a target's operator can tell flows apart.
    """
    digest = hashlib.sha256(f"{flow_id}\x1f{event_id}".encode()).hexdigest()
    return f"synapseops-flow-{flow_id}-{digest[:40]}"


@dataclass(frozen=True)
class Target:
    """Where a flow sends its output: the target connector's base URL and the endpoint."""

    connector: str
    base_url: str
    path: str
    method: str = "POST"
    timeout_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def build_request(
    target: Target,
    output: Mapping[str, Any],
    *,
    key: str,
    auth_headers: Mapping[str, str],
    traceparent: str | None = None,
) -> OutboundRequest:
    """The request to ``target``: the mapped ``output`` as exact JSON (Decimals digit for
    digit, big integers intact), the credential's headers, the key and the trace."""
    headers = {
        name: value
        for name, value in target.headers.items()
        if name.lower() not in _RESERVED_HEADERS
    }
    headers.update(auth_headers)
    headers["Content-Type"] = JSON_CONTENT_TYPE
    headers[IDEMPOTENCY_HEADER] = key
    if traceparent:
        headers["traceparent"] = traceparent
    return OutboundRequest(
        method=target.method.upper(),
        path=target.path if target.path.startswith("/") else "/" + target.path,
        headers=headers,
        body=dump_output(output),
    )
