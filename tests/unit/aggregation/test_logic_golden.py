"""Golden tests of each source's TransformationLogic on the public fixtures.

Each case runs a fixture (``samples/github``, ``samples/otel``, a market tick, a bulk line)
through its logic with a fixed context and compares the canonical records with
``tests/golden/aggregation/<case>.canonical.json``; ``SYNAPSEOPS_UPDATE_GOLDEN=1`` rewrites
them (then read the diff). Each record is also written in the Confluent wire format and read
back with fastavro and the v3 schema file alone: what a consumer elsewhere would do.
"""

from __future__ import annotations

import io
import json
import os
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader

from schemas import CANONICAL_EVENT
from schemas.serde import AvroSerde
from schemas.store import AVRO_DIR, LocalSchemaStore, schema_id
from streams.aggregation.logic import github
from streams.aggregation.logic.common import Context
from streams.aggregation.transform import transform_payload
from tests.fixtures import GOLDEN, SAMPLES

CASES = GOLDEN / "aggregation"
CONTEXT = Context(
    source="github",
    source_type="api_polling",
    ingested_at=datetime(2026, 12, 1, 12, 0, 0, 250000, tzinfo=UTC),
    trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    raw_ref="synapseops.aggregation.raw/0/42",
)
RECEIVED = datetime(2026, 12, 1, 11, 59, 58, tzinfo=UTC)
WEBHOOKS = {
    "push": "push",
    "push.with-new-branch": "push",
    "pull_request.opened": "pull_request",
    "issues.opened": "issues",
    "workflow_run.completed": "workflow_run",
    "release.published": "release",
}
TICK = {
    "venue": "XNAS",
    "symbol": "ACME",
    "seq": 7,
    "price": "101.2500",
    "size": 300,
    "ts": "1764590400123456789",
}
BULK_LINE = {
    "id": "row-1",
    "type": "order.created",
    "time": "2026-11-30T10:00:00+01:00",
    "subject": "order-9",
    "amount": "19.90",
    "items": [{"sku": "A", "qty": 2}],
}


def _cases() -> dict[str, tuple[str, Any, Context]]:
    cases: dict[str, tuple[str, Any, Context]] = {}
    for name, event_name in WEBHOOKS.items():
        payload = json.loads((SAMPLES / "github" / f"{name}.json").read_bytes())
        event = github.from_webhook(event_name, f"delivery-{name}", payload, RECEIVED)
        cases[f"github.{name}"] = ("github", event, CONTEXT)
    otel_context = Context("app-logs", "stream", CONTEXT.ingested_at, CONTEXT.trace_id)
    for name in ("logs", "events"):
        request = json.loads((SAMPLES / "otel" / f"{name}.json").read_bytes())
        cases[f"otel.{name}"] = ("otel", request, otel_context)
    cases["market.tick"] = (
        "market",
        TICK,
        Context("ticks", "stream", CONTEXT.ingested_at, CONTEXT.trace_id),
    )
    cases["bulk.line"] = (
        "bulk",
        BULK_LINE,
        Context("orders-csv", "bulk_upload", CONTEXT.ingested_at, CONTEXT.trace_id),
    )
    return cases


CASE_INPUTS = _cases()


def _jsonable(record: dict[str, Any]) -> Any:
    return json.loads(json.dumps(record, default=lambda value: value.isoformat()))


@pytest.mark.parametrize("case", sorted(CASE_INPUTS))
def test_logic_output_matches_its_golden_file(case: str) -> None:
    logic, payload, context = CASE_INPUTS[case]
    events = [_jsonable(event.to_record()) for event in transform_payload(logic, payload, context)]
    golden = CASES / f"{case}.canonical.json"
    if os.environ.get("SYNAPSEOPS_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(events, indent=2, sort_keys=True) + "\n")
    assert events == json.loads(golden.read_text())


@pytest.mark.parametrize("case", sorted(CASE_INPUTS))
def test_wire_format_reads_back_with_the_schema_file_alone(case: str) -> None:
    logic, payload, context = CASE_INPUTS[case]
    serde = AvroSerde(LocalSchemaStore(), CANONICAL_EVENT)
    text = max(
        AVRO_DIR.joinpath(CANONICAL_EVENT).glob("v*.avsc"), key=lambda p: int(p.stem[1:])
    ).read_text()
    schema = parse_schema(json.loads(text))
    for event in transform_payload(logic, payload, context):
        data = serde.encode(event.to_record())
        magic, writer_id = struct.unpack(">BI", data[:5])
        assert (magic, writer_id) == (0, schema_id(text))
        assert schemaless_reader(io.BytesIO(data[5:]), schema) == event.to_record()


def test_otel_keeps_64_bit_values_exact_and_nested_attributes() -> None:
    request = json.loads((SAMPLES / "otel" / "logs.json").read_bytes())
    (event,) = transform_payload("otel", request, CASE_INPUTS["otel.logs"][2])
    assert event.body is not None
    assert event.body.time_unix_nano == 1544712660300000000  # > 2**53: no float on the way
    attributes = json.loads(event.body.attributes)
    assert attributes["int.attribute"] == 10
    assert attributes["map.attribute"] == {"some.map.key": "some value"}
    assert event.body.trace_id == "5b8efff798038103d269b633813fc60c"


def test_the_same_otel_record_twice_is_the_same_event_id() -> None:
    """A collector retrying an export sends the record again: it must de-duplicate."""
    request = json.loads((SAMPLES / "otel" / "logs.json").read_bytes())
    first = transform_payload("otel", request, CASE_INPUTS["otel.logs"][2])
    again = transform_payload("otel", request, CASE_INPUTS["otel.logs"][2])
    assert first[0].id == again[0].id


def test_github_push_unix_times_do_not_break_the_event_time(tmp_path: Path) -> None:
    # push payloads carry repository.pushed_at as a Unix integer; created_at stays the event's
    payload = json.loads((SAMPLES / "github" / "push.json").read_bytes())
    (event,) = transform_payload(
        "github", github.from_webhook("push", "d1", payload, RECEIVED), CONTEXT
    )
    assert event.time == RECEIVED
    assert event.type == "github.PushEvent"
    assert event.subject == payload["repository"]["full_name"]
