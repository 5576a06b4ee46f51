"""The ingress decisions as pure functions: event id, entity key, type, trace, headers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.ingress import (
    MAX_ID_LENGTH,
    InboundEvent,
    body_id,
    describe_event,
    entity_key_from,
    event_id_from,
    event_type_from,
    is_valid_source,
    kafka_headers,
    parse_json_body,
)
from synapseops import headers as kh
from synapseops.errors import SchemaInvalid, Undecodable
from synapseops.ids import parse_traceparent

INCOMING_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Idempotency-Key": "idem-1", "X-Event-Id": "x-1"}, {"id": 9}, "idem-1"),
        ({"X-Event-Id": "x-1", "ce-id": "c-1"}, {"id": 9}, "x-1"),
        ({"ce-id": "c-1", "ce-source": "/orders/eu"}, {"id": 9}, "/orders/eu/c-1"),
        ({"ce-id": "c-1"}, {}, "c-1"),
        ({"x-shopify-webhook-id": "b54557e4-bdd9"}, {"id": 9}, "b54557e4-bdd9"),
        ({"X-GitHub-Delivery": "72d3162e"}, {}, "72d3162e"),
        ({}, {"id": "evt_1"}, "evt_1"),
        ({}, {"id": 450789469}, "450789469"),
        ({"IDEMPOTENCY-KEY": "  padded  "}, {}, "padded"),
        ({"Idempotency-Key": ""}, {"id": "evt_2"}, "evt_2"),
    ],
)
def test_event_id_precedence(headers: dict[str, str], body: object, expected: str) -> None:
    assert event_id_from(headers, body) == expected


@pytest.mark.parametrize(
    "body", [{}, {"id": True}, {"id": 1.5}, {"id": ""}, {"id": None}, [{"id": 1}], "id", 7]
)
def test_no_usable_id_in_body(body: object) -> None:
    assert body_id(body) is None
    assert event_id_from({}, body) is None
    with pytest.raises(SchemaInvalid, match="no event id"):
        describe_event({}, body)


def test_entity_key_prefers_header_then_body_id_then_event_id() -> None:
    assert entity_key_from({"X-Entity-Key": "order-1"}, {"id": 2}, "e") == "order-1"
    assert entity_key_from({}, {"id": 2}, "e") == "2"
    assert entity_key_from({}, {"order": {"id": 2}}, "e") == "e"


def test_event_type_sources() -> None:
    assert event_type_from({"X-Event-Type": "a", "ce-type": "b"}, {"type": "c"}) == "a"
    assert event_type_from({"ce-type": "b"}, {"type": "c"}) == "b"
    assert event_type_from({"X-GitHub-Event": "push"}, {}) == "push"
    assert event_type_from({}, {"type": "payment_intent.succeeded"}) == "payment_intent.succeeded"
    assert event_type_from({}, {"type": 3}) is None
    assert event_type_from({}, ["type"]) is None


def test_incoming_trace_is_continued_and_a_missing_one_started() -> None:
    continued = describe_event({"traceparent": INCOMING_TRACE, "X-Event-Id": "e"}, {})
    assert parse_traceparent(continued.traceparent) is not None
    assert continued.traceparent.split("-")[1] == INCOMING_TRACE.split("-")[1]
    assert continued.traceparent != INCOMING_TRACE  # a new span for this hop

    for bad in (None, "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"):
        headers = {"X-Event-Id": "e"} | ({"traceparent": bad} if bad else {})
        started = describe_event(headers, {})
        assert parse_traceparent(started.traceparent) is not None
        assert started.traceparent.split("-")[1] != INCOMING_TRACE.split("-")[1]


def test_overlong_ids_are_rejected() -> None:
    with pytest.raises(SchemaInvalid, match="event id longer"):
        describe_event({"X-Event-Id": "e" * (MAX_ID_LENGTH + 1)}, {})
    with pytest.raises(SchemaInvalid, match="entity key longer"):
        describe_event({"X-Event-Id": "e", "X-Entity-Key": "k" * (MAX_ID_LENGTH + 1)}, {})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"  \n", "empty body"),
        (b"{not json", "not JSON"),
        (b'{"amount": NaN}', "not JSON"),
        (b'{"amount": Infinity}', "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_parse_json_body_rejects(body: bytes, reason: str) -> None:
    with pytest.raises(Undecodable, match=reason):
        parse_json_body(body)


def test_parse_json_body_keeps_big_integers_exact() -> None:
    assert parse_json_body(b'{"n": 18446744073709551617}') == {"n": 18446744073709551617}


def _no_constant(name: str) -> object:
    raise ValueError(name)


def _reference(body: bytes) -> object:
    """What json.loads alone made of a body (the ingress' reference decoder)."""
    if not body.strip():
        return "refused"
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return "refused"


def _typed(value: object) -> object:
    """A value with its types spelt out (1 == 1.0 == True in Python; not in JSON)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, repr(value))


def _decoded(body: bytes) -> object:
    try:
        return parse_json_body(body)
    except Undecodable:
        return "refused"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans(), st.binary(max_size=3))
def test_parse_json_body_decodes_as_json_loads_does(
    value: object, ascii_: bool, noise: bytes
) -> None:
    # The fast decoder (msgspec) decides nothing json.loads would decide otherwise: the same
    # values, of the same types, and the same bodies refused — with a few bytes of noise
    # spliced in (broken documents) as well as whole ones.
    body = json.dumps(value, ensure_ascii=ascii_, allow_nan=True).encode("utf-8")
    for candidate in (body, body[: len(body) // 2] + noise + body[len(body) // 2 :]):
        expected = _reference(candidate)
        got = _decoded(candidate)
        assert (got if got == "refused" else _typed(got)) == (
            expected if expected == "refused" else _typed(expected)
        )


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2}',
        b'{"big": 1e400}',
        b'\xef\xbb\xbf{"bom": true}',
        '{"utf16": 1}'.encode("utf-16"),
        b'{"lone": "\\ud800"}',
        b'{"n": -0, "f": 1E5, "s": "\\u00e9"}',
        b'{"ctl": "\x01"}',
        b" [1, 2] ",
    ],
)
def test_parse_json_body_edge_cases_match_json_loads(body: bytes) -> None:
    expected, got = _reference(body), _decoded(body)
    assert (got if got == "refused" else _typed(got)) == (
        expected if expected == "refused" else _typed(expected)
    )


@pytest.mark.parametrize("source", ["stripe", "shopify", "crm-hubspot", "a", "x_1"])
def test_valid_sources(source: str) -> None:
    assert is_valid_source(source)


@pytest.mark.parametrize("source", ["", "Stripe", "-x", "a b", "a/b", "é", "x" * 64, "a.b"])
def test_invalid_sources(source: str) -> None:
    assert not is_valid_source(source)


def test_kafka_headers_carry_the_documented_names_without_secrets() -> None:
    event = InboundEvent("evt_1", "pi_1", "charge.refunded", INCOMING_TRACE, "2026-01-01T00:00Z")
    http = {
        "Content-Type": "application/json; charset=utf-8",
        "Authorization": "Bearer s3cret",
        "Cookie": "session=s3cret",
        "Stripe-Signature": "t=1,v1=abc",
    }
    result = dict(kafka_headers(event, "stripe", http))
    assert result[kh.EVENT_ID] == b"evt_1"
    assert result[kh.SOURCE] == b"stripe"
    assert result[kh.EVENT_TYPE] == b"charge.refunded"
    assert result[kh.RECEIVED_AT] == b"2026-01-01T00:00Z"
    assert result[kh.CONTENT_TYPE] == b"application/json; charset=utf-8"
    assert result[kh.TRACEPARENT] == INCOMING_TRACE.encode()
    kept = json.loads(result[kh.HTTP_HEADERS])
    assert kept["stripe-signature"] == "t=1,v1=abc"
    assert "authorization" not in kept and "cookie" not in kept
    assert b"s3cret" not in b"".join(result.values())


def test_kafka_headers_omit_an_unknown_type_and_default_the_content_type() -> None:
    event = InboundEvent("e", "k", None, INCOMING_TRACE, "t")
    result = dict(kafka_headers(event, "src", {}))
    assert kh.EVENT_TYPE not in result
    assert result[kh.CONTENT_TYPE] == b"application/json"
