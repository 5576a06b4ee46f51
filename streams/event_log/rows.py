"""The event log's work, pure and typed: a Kafka record in, its ``inbound_events`` row out.

:func:`to_row` answers an :class:`InboundEventRow` or raises a
:class:`~synapseops.errors.FatalError` saying why the record can never be stored; the pipeline
(:mod:`streams.event_log.pipeline`) writes the row. No I/O here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from synapseops import headers as h
from synapseops.errors import SchemaInvalid, Undecodable
from synapseops.ids import trace_id_of

HeaderPairs = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


@dataclass(frozen=True)
class InboundEventRow:
    """A row of ``inbound_events`` (``id`` and ``stored_at`` are the database's)."""

    event_id: str
    source: str
    entity_key: str
    event_type: str | None
    trace_id: str | None
    traceparent: str | None
    topic: str
    partition: int
    offset: int
    payload: Any
    headers: dict[str, Any]
    received_at: datetime

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def to_row(
    key: bytes | None,
    value: bytes | None,
    headers: HeaderPairs,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None = None,
) -> InboundEventRow:
    """Decode one inbound record into its ``inbound_events`` row.

    Raises :class:`Undecodable` for a body that is not UTF-8 JSON (or holds what PostgreSQL
    ``jsonb`` cannot store: ``\\u0000``, NaN, infinities) and :class:`SchemaInvalid` when the
    headers lack the event id or source. An empty body is stored with ``payload`` NULL.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    ingress = h.IngressHeaders({name: _clean(text) for name, text in h.to_map(pairs).items()})
    event_id = (ingress.event_id or "").strip()
    source = (ingress.source or "").strip()
    if not event_id:
        raise SchemaInvalid(f"header {h.EVENT_ID} is missing or empty")
    if not source:
        raise SchemaInvalid(f"header {h.SOURCE} is missing or empty")
    traceparent = ingress.traceparent
    stored: dict[str, Any] = dict(ingress.values)
    http_headers = ingress.http_headers()
    if http_headers is not None:
        # Headers end up in a table many people can read: the codec dropped credentials again.
        stored[h.HTTP_HEADERS] = http_headers
    return InboundEventRow(
        event_id=event_id,
        source=source,
        # An event about no particular entity is its own entity.
        entity_key=_clean(key.decode("utf-8", "replace")) if key else event_id,
        event_type=ingress.event_type,
        trace_id=trace_id_of(traceparent),
        traceparent=traceparent,
        topic=topic,
        partition=partition,
        offset=offset,
        payload=decode_body(value),
        headers=stored,
        received_at=ingress.received_at(timestamp_ms),
    )


def decode_body(value: bytes | None) -> Any:
    """The body as JSON; ``None`` for an empty body. Raises :class:`Undecodable`."""
    if not value:
        return None
    try:
        text = value.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Undecodable(f"body is not UTF-8 (byte {exc.start})") from exc
    try:
        payload = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise Undecodable(f"body is not JSON: {exc.msg} at line {exc.lineno}") from exc
    if _holds_nul(payload):
        raise Undecodable("body holds \\u0000, which PostgreSQL jsonb cannot store")
    return payload


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise Undecodable(f"number {text[:40]} is out of range for jsonb")
    return number


def _no_constant(text: str) -> float:
    raise Undecodable(f"{text} is not JSON")


def _holds_nul(payload: Any) -> bool:
    stack = [payload]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _clean(text: str) -> str:
    # PostgreSQL text and jsonb refuse NUL; a header is metadata, so replace rather than reject.
    return text.replace("\x00", "\ufffd")
