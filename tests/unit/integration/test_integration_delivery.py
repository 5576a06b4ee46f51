"""The delivery of one source event through one flow, without I/O: headers read, body mapped,
request built, key derived — on the real Shopify fixture and the golden Shopify→ERP mapping."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from streams.integration.commands import RerunCommand, decode_command
from streams.integration.delivery import (
    Target,
    build_request,
    idempotency_key,
    map_body,
    source_event,
)
from streams.mapping import compile_mapping
from streams.road.record import RoadRecord
from synapseops import headers as kh
from synapseops.errors import FatalError, MappingFailed, SchemaInvalid, Undecodable
from tests.fixtures import GOLDEN, SAMPLES

ORDER = SAMPLES / "shopify" / "order.json"
BIG_ID = 2**53 + 7
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def order_body() -> bytes:
    text = ORDER.read_text()
    # The id edited to above 2^53, in the raw text, so no float ever touches it.
    return text.replace('"id": 450789469', f'"id": {BIG_ID}', 1).encode()


def record(
    body: bytes, headers: list[tuple[str, bytes]] | None = None, key: bytes | None = b"o-1"
) -> RoadRecord:
    default = [
        (kh.EVENT_ID, b"d-1"),
        (kh.CONNECTOR, b"shopify"),
        (kh.ENDPOINT, b"orders/create"),
        (kh.TRACEPARENT, TRACE.encode()),
        ("synapseops-attempt", b"2"),
    ]
    return RoadRecord("integration.events", 0, 7, None, key, body, headers or default)


def shopify_mapping() -> object:
    return compile_mapping(json.loads((GOLDEN / "shopify_order_to_erp.mapping.json").read_text()))


def test_source_event_reads_headers_and_keeps_the_body_raw() -> None:
    body = order_body()
    event = source_event(record(body))
    assert (event.event_id, event.connector, event.endpoint) == ("d-1", "shopify", "orders/create")
    assert event.body is body or event.body == body
    assert event.entity_key == "o-1"
    assert event.traceparent == TRACE
    assert event.flow_id is None
    # The road's own headers are history, not part of the source event.
    assert "synapseops-attempt" not in event.headers


def test_source_event_names_every_missing_header() -> None:
    with pytest.raises(SchemaInvalid) as caught:
        source_event(record(b"{}", headers=[(kh.CONNECTOR, b"shopify")]))
    assert kh.EVENT_ID in str(caught.value) and kh.ENDPOINT in str(caught.value)
    assert isinstance(caught.value, FatalError)


def test_flow_header_restricts_the_event_to_one_flow() -> None:
    headers = [
        (kh.EVENT_ID, b"e"),
        (kh.CONNECTOR, b"c"),
        (kh.ENDPOINT, b"topic"),
        (kh.FLOW_ID, b"12"),
    ]
    assert source_event(record(b"{}", headers=headers)).flow_id == "12"


def test_idempotency_key_is_a_pure_function_of_flow_and_event() -> None:
    key = idempotency_key(3, "d-1")
    assert key == idempotency_key(3, "d-1")
    assert key != idempotency_key(4, "d-1")
    assert key != idempotency_key(3, "d-2")
    # A flow/event pair that concatenates alike must not collide.
    assert idempotency_key(1, "2-x") != idempotency_key("1-2", "x")
    assert key.startswith("synapseops-flow-3-")
    long_key = idempotency_key(3, "x" * 10_000)
    assert len(long_key) < 80 and long_key.isascii()


def test_shopify_order_maps_to_exact_money_and_a_big_id_intact() -> None:
    output = map_body(shopify_mapping(), order_body())  # type: ignore[arg-type]
    target = Target(connector="erp", base_url="http://erp", path="erp/api/orders")
    request = build_request(
        target,
        output,
        key=idempotency_key(3, "d-1"),
        auth_headers={"Authorization": "Bearer s3cret"},
        traceparent=TRACE,
    )
    assert request.method == "POST" and request.path == "/erp/api/orders"
    sent = json.loads(request.body, parse_float=Decimal)
    assert sent["source_order_id"] == str(BIG_ID)
    assert sent["totals"] == {
        "subtotal": "398.00",
        "tax": "11.94",
        "shipping": "0.00",
        "discount": "0.00",
        "total": "409.94",
    }
    assert sent["lines"][0]["unit_price"] == "199.00"
    assert request.headers["Idempotency-Key"] == idempotency_key(3, "d-1")
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["traceparent"] == TRACE
    assert request.headers["Content-Type"] == "application/json"


def test_static_target_headers_cannot_replace_key_or_trace() -> None:
    target = Target(
        connector="erp",
        base_url="http://erp",
        path="/o",
        method="put",
        headers={"Idempotency-Key": "mine", "X-Tenant": "acme", "content-type": "text/plain"},
    )
    request = build_request(target, {"a": 1}, key="k", auth_headers={})
    assert request.method == "PUT"
    assert request.headers == {
        "X-Tenant": "acme",
        "Content-Type": "application/json",
        "Idempotency-Key": "k",
    }
    assert request.body == b'{"a":1}'


def test_a_failing_rule_is_named_and_fatal() -> None:
    mapping = compile_mapping(
        {"rules": [{"target": "erp.total", "source": "order.note", "transforms": ["to_decimal"]}]}
    )
    with pytest.raises(MappingFailed) as caught:
        map_body(mapping, b'{"order": {"note": "abc"}}')
    assert isinstance(caught.value, FatalError)
    assert "rule 1 (erp.total)" in str(caught.value)


def test_a_body_that_is_not_json_is_undecodable() -> None:
    mapping = compile_mapping({"rules": [{"target": "a", "const": 1}]})
    with pytest.raises(Undecodable):
        map_body(mapping, b"<xml/>")


def test_rerun_command_round_trips_and_refuses_junk() -> None:
    command = RerunCommand(run_id=42, mapping="pinned", rerun_id="rr_1")
    assert decode_command(command.encode()) == command
    assert decode_command(b'{"command": "rerun", "run_id": 7}').mapping == "latest"
    assert command.key(9) == b"9"
    with pytest.raises(Undecodable):
        decode_command(b"not json")
    with pytest.raises(Undecodable):
        decode_command(None)
    with pytest.raises(SchemaInvalid):
        decode_command(b'{"command": "rerun", "run_id": 0}')
    with pytest.raises(SchemaInvalid):
        decode_command(b'{"command": "rerun", "run_id": 1, "mapping": "oldest"}')
