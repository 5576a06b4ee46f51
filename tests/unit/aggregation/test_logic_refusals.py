"""A payload a logic cannot transform is a PayloadUntransformable naming the reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streams.aggregation.logic.common import Context
from streams.aggregation.transform import transform, transform_payload
from synapseops.errors import FatalError, PayloadUntransformable

CONTEXT = Context(
    "s", "stream", datetime(2026, 12, 1, tzinfo=UTC), "4bf92f3577b34da6a3ce929d0e0e4736"
)
RECORD = {"timeUnixNano": "1544712660300000000", "body": {"stringValue": "x"}}


def _otel(record: dict[str, Any]) -> dict[str, Any]:
    return {"resourceLogs": [{"resource": {}, "scopeLogs": [{"logRecords": [record]}]}]}


@pytest.mark.parametrize(
    ("logic", "payload", "reason"),
    [
        ("github", [], "JSON object"),
        ("github", {"type": "PushEvent", "created_at": "2026-01-01T00:00:00Z"}, "id is missing"),
        ("github", {"id": "1", "type": "PushEvent", "created_at": "yesterday"}, "ISO 8601"),
        (
            "github",
            {"id": "1", "type": "PushEvent", "created_at": "2026-01-01T00:00:00"},
            "no offset",
        ),
        ("otel", _otel(RECORD | {"traceId": "xyz"}), "traceId"),
        ("otel", _otel(RECORD | {"timeUnixNano": 1.5e18 * 10}), "out of range"),
        ("otel", _otel(RECORD | {"severityNumber": "SEVERITY_NUMBER_INFO"}), "integer"),
        ("otel", _otel(RECORD | {"body": {"strangeValue": 1}}), "AnyValue"),
        ("market", {"venue": "X", "symbol": "A", "seq": 1, "price": "NaN", "ts": 1}, "positive"),
        ("market", {"venue": "X", "symbol": "A", "seq": "1", "price": "1", "ts": 1}, "seq"),
        ("bulk", {"id": "1", "type": "t"}, "missing time"),
        ("bulk", {"id": "1", "type": "t", "time": 1, "severity": 99}, "canonical schema"),
        ("nope", {}, "no TransformationLogic"),
    ],
)
def test_refused_with_the_reason(logic: str, payload: Any, reason: str) -> None:
    with pytest.raises(PayloadUntransformable, match=reason) as raised:
        transform_payload(logic, payload, CONTEXT)
    assert isinstance(raised.value, FatalError)  # the road dead-letters it at once


@pytest.mark.parametrize("raw", [b"", b"{not json", b"\xff\xfe"])
def test_bytes_that_are_not_json_are_refused(raw: bytes) -> None:
    with pytest.raises(PayloadUntransformable):
        transform("github", raw, CONTEXT)
