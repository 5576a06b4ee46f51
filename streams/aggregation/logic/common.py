"""What every TransformationLogic shares: the context of one payload and time conversions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.models import AVRO_LONG_MAX, AVRO_LONG_MIN, AttributeValue, CanonicalEvent
from synapseops.errors import PayloadUntransformable

NS_PER_S = 1_000_000_000
# OpenTelemetry SeverityNumber of INFO: events that carry no level of their own.
SEVERITY_INFO = 9


@dataclass(frozen=True)
class Context:
    """What the platform knows of a payload besides its bytes.

    ``source`` is the DataSource name (the CloudEvents ``source``), ``source_type`` how it
    came in, ``ingested_at`` when the platform accepted it (the observed time), ``trace_id``
    the W3C trace id stamped at ingress, ``raw_ref`` where the raw record sits.
    """

    source: str
    source_type: str
    ingested_at: datetime
    trace_id: str
    raw_ref: str | None = None


def fail(logic: str, reason: str) -> PayloadUntransformable:
    return PayloadUntransformable(f"{logic}: {reason}", logic=logic)


def parse_time(logic: str, value: Any, field: str) -> datetime:
    """An ISO 8601 string (``Z`` or an offset) or Unix seconds as an aware UTC datetime."""
    if isinstance(value, bool):
        raise fail(logic, f"{field} is a boolean, not a time")
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise fail(logic, f"{field} {value!r} is not an ISO 8601 time") from exc
        if parsed.tzinfo is None:
            raise fail(logic, f"{field} {value!r} has no offset (which zone?)")
        return parsed.astimezone(UTC)
    raise fail(logic, f"{field} is missing")


def to_nanos(moment: datetime) -> int:
    """Nanoseconds since the epoch, exact (no float on the way)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def from_nanos(nanos: int) -> datetime:
    seconds, rest = divmod(nanos, NS_PER_S)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1_000)


def as_json(value: Any) -> str:
    """Compact, key-sorted JSON: the same value always gives the same text (golden tests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def scalar(value: Any) -> AttributeValue | Any:
    """``value`` if it fits the flat attribute map (bool, 64-bit int, float, str, None);
    otherwise the sentinel :data:`NOT_SCALAR`."""
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int) and AVRO_LONG_MIN <= value <= AVRO_LONG_MAX:
        return value
    return NOT_SCALAR


NOT_SCALAR = object()


def flat(pairs: dict[str, Any]) -> dict[str, AttributeValue]:
    """The scalar entries of ``pairs`` (nested ones stay in the body's JSON)."""
    kept: dict[str, AttributeValue] = {}
    for key, value in pairs.items():
        simple = scalar(value)
        if simple is not NOT_SCALAR:
            kept[key] = simple
    return kept


def canonical(context: Context, **fields: Any) -> CanonicalEvent:
    """A canonical event with the envelope fields the context gives (source, source type,
    ingested time, trace, raw pointer) and the logic's own ``fields``."""
    return CanonicalEvent(
        source=context.source,
        source_type=context.source_type,
        ingested_at=context.ingested_at,
        trace_id=context.trace_id,
        raw_ref=context.raw_ref,
        **fields,
    )
