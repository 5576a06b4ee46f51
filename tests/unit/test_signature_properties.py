"""Properties of the signature parsers and the ingress header readers (hypothesis).

For every scheme: garbage never raises anything but :class:`SignatureInvalid`; what was
signed is accepted, exactly; any single byte flipped in the body (or the signature) is refused.
The header readers never raise anything but :class:`SchemaInvalid`, and ids never come from
an unsigned header when only the body is signed.
"""

from __future__ import annotations

import base64
import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.ingress import (
    MAX_ID_LENGTH,
    body_digest_id,
    describe_event,
    describe_signed_event,
    event_id_from,
    without_headers,
)
from synapseops import headers as kh
from synapseops.errors import SchemaInvalid, SignatureInvalid
from synapseops.principals import parse_token
from synapseops.signatures import (
    sign_hmac_hex,
    sign_standard_webhooks,
    sign_stripe,
    verify_hmac_hex,
    verify_scheme,
    verify_shopify,
    verify_standard_webhooks,
    verify_stripe,
    verify_token,
)

STRIPE_SECRET = "whsec_property"
SW_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-key-32-bytes!!").decode()
SECRET = "shpss_property"
NAMES = st.sampled_from(
    [
        "Stripe-Signature",
        "X-Shopify-Hmac-Sha256",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Signature-256",
        "Authorization",
        "Idempotency-Key",
        "X-Event-Id",
        "ce-id",
        "ce-source",
        "X-Entity-Key",
        "traceparent",
        "X-Shopify-Webhook-Id",
    ]
)
HEADERS = st.dictionaries(st.one_of(NAMES, st.text(max_size=20)), st.text(max_size=200))
BODIES = st.binary(max_size=512)
fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flip(data: bytes, index: int, bit: int) -> bytes:
    position = index % len(data)
    return data[:position] + bytes([data[position] ^ (1 << bit)]) + data[position + 1 :]


def only_signature_invalid(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except SignatureInvalid as exc:
        assert exc.reason


# ---- garbage raises only SignatureInvalid --------------------------------------------------


@fast
@given(body=BODIES, header=st.one_of(st.none(), st.text(max_size=300)), headers=HEADERS)
def test_garbage_raises_only_signature_invalid(
    body: bytes, header: str | None, headers: dict[str, str]
) -> None:
    only_signature_invalid(lambda: verify_stripe(body, header, [STRIPE_SECRET]))
    only_signature_invalid(lambda: verify_shopify(body, headers, SECRET))
    only_signature_invalid(lambda: verify_standard_webhooks(body, headers, SW_SECRET))
    only_signature_invalid(lambda: verify_hmac_hex(body, headers, SECRET, "X-Signature-256"))
    only_signature_invalid(lambda: verify_token(headers, [SECRET]))
    only_signature_invalid(lambda: verify_token(headers, [SECRET], "X-Signature-256"))
    for scheme in ("shopify", "standard_webhooks", "hmac_hex", "rot13"):
        only_signature_invalid(lambda s=scheme: verify_scheme(s, body, headers, [SECRET]))


@fast
@given(
    parts=st.lists(
        st.tuples(st.sampled_from(["t", "v1", "v0", "", "x"]), st.text(max_size=80)), max_size=6
    ),
    body=BODIES,
)
def test_stripe_header_shaped_garbage_raises_only_signature_invalid(
    parts: list[tuple[str, str]], body: bytes
) -> None:
    header = ",".join(f"{name}={value}" for name, value in parts)
    only_signature_invalid(lambda: verify_stripe(body, header, [STRIPE_SECRET]))


@fast
@given(entries=st.lists(st.tuples(st.sampled_from(["v1", "v1a", "v2", ""]), st.text(max_size=60))))
def test_standard_webhooks_lists_raise_only_signature_invalid(
    entries: list[tuple[str, str]],
) -> None:
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": " ".join(f"{v},{s}" for v, s in entries),
    }
    only_signature_invalid(lambda: verify_standard_webhooks(b"{}", headers, SW_SECRET))


# ---- accept exactly what was signed, refuse any flipped byte -------------------------------


@fast
@given(body=BODIES.filter(bool), index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_stripe_accepts_the_signed_body_and_refuses_a_flip(
    body: bytes, index: int, bit: int
) -> None:
    now = int(time.time())
    header = sign_stripe(body, STRIPE_SECRET, now)
    assert verify_stripe(body, header, ["whsec_other", STRIPE_SECRET], now=now) == now
    only_signature_invalid(lambda: verify_stripe(flip(body, index, bit), header, [STRIPE_SECRET]))
    digest = header.split("v1=")[1]
    position = index % len(digest)
    other = "0" if digest[position] != "0" else "1"
    forged = header.replace(digest, digest[:position] + other + digest[position + 1 :])
    try:
        verify_stripe(body, forged, [STRIPE_SECRET], now=now)
        raise AssertionError("a changed signature was accepted")
    except SignatureInvalid:
        pass


@fast
@given(
    body=BODIES.filter(bool),
    msg_id=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s.isprintable()),
    index=st.integers(min_value=0),
    bit=st.integers(0, 7),
)
def test_standard_webhooks_accepts_the_signed_and_refuses_a_flip(
    body: bytes, msg_id: str, index: int, bit: int
) -> None:
    now = int(time.time())
    signature = sign_standard_webhooks(body, SW_SECRET, msg_id, now)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": signature}
    # Several signatures (key rotation): any v1 may match.
    rotated = {**headers, "webhook-signature": f"v1,{base64.b64encode(b'x' * 32).decode()} " +
               signature}  # fmt: skip
    verify_standard_webhooks(body, headers, SW_SECRET, now=now)
    verify_standard_webhooks(body, rotated, SW_SECRET, now=now)
    for changed_body, changed in (
        (flip(body, index, bit), headers),
        (body, {**headers, "webhook-id": msg_id + "x"}),  # the id is signed too
        (body, {**headers, "webhook-timestamp": str(now - 1)}),
    ):
        try:
            verify_standard_webhooks(changed_body, changed, SW_SECRET, now=now)
            raise AssertionError("a changed delivery was accepted")
        except SignatureInvalid:
            pass


@fast
@given(body=BODIES.filter(bool), index=st.integers(min_value=0), bit=st.integers(0, 7))
def test_shopify_and_hex_hmac_accept_the_signed_and_refuse_a_flip(
    body: bytes, index: int, bit: int
) -> None:
    import hashlib
    import hmac

    b64 = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    hex_header = sign_hmac_hex(body, SECRET)
    verify_shopify(body, {"x-shopify-hmac-sha256": b64}, SECRET)
    verify_hmac_hex(body, {"X-Hub-Signature-256": hex_header}, SECRET, "X-Hub-Signature-256")
    verify_scheme("hmac_hex", body, {"X-Signature-256": hex_header}, ["old", SECRET])
    flipped = flip(body, index, bit)
    for check in (
        lambda: verify_shopify(flipped, {"X-Shopify-Hmac-Sha256": b64}, SECRET),
        lambda: verify_hmac_hex(flipped, {"X-Sig": hex_header}, SECRET, "X-Sig"),
    ):
        try:
            check()
            raise AssertionError("a flipped body was accepted")
        except SignatureInvalid:
            pass


# ---- ingress header readers ----------------------------------------------------------------

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@fast
@given(headers=HEADERS, body=st.one_of(JSONISH, st.dictionaries(st.just("id"), JSONISH)))
def test_header_readers_raise_only_schema_invalid(headers: dict[str, str], body: object) -> None:
    try:
        event = describe_event(headers, body)
    except SchemaInvalid:
        return
    assert event.event_id and len(event.event_id) <= MAX_ID_LENGTH
    assert event.event_id == event_id_from(headers, body)
    assert len(event.traceparent.split("-")) == 4


@fast
@given(headers=HEADERS, raw=BODIES, scheme=st.sampled_from(["shopify", "hmac_hex", "none"]))
def test_body_signed_schemes_never_take_an_id_or_key_from_a_header(
    headers: dict[str, str], raw: bytes, scheme: str
) -> None:
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    event = describe_signed_event(scheme, headers, raw, parsed)
    assert event.event_id == body_digest_id(raw)
    body_key = parsed.get("id") if isinstance(parsed, dict) else None
    if not (isinstance(body_key, str) and body_key.strip()) and not (
        isinstance(body_key, int) and not isinstance(body_key, bool)
    ):
        assert event.entity_key == event.event_id  # not X-Entity-Key, whatever it says


@fast
@given(headers=HEADERS, raw=BODIES)
def test_standard_webhooks_id_is_the_signed_webhook_id(headers: dict[str, str], raw: bytes) -> None:
    try:
        event = describe_signed_event("standard_webhooks", headers, raw, None)
    except SchemaInvalid:
        assert not any(k.lower() == "webhook-id" and v.strip() for k, v in headers.items()) or any(
            k.lower() == "webhook-id" and len(v.strip()) > MAX_ID_LENGTH for k, v in headers.items()
        )
        return
    sent = [v.strip() for k, v in headers.items() if k.lower() == "webhook-id"]
    assert event.event_id == sent[-1]


@fast
@given(
    record=st.lists(
        st.tuples(st.text(max_size=20), st.one_of(st.none(), st.binary(max_size=40))), max_size=8
    )
)
def test_kafka_header_reader_never_raises_and_the_last_value_wins(
    record: list[tuple[str, bytes | None]],
) -> None:
    read = kh.to_map(record)
    assert set(read) == {name for name, _ in record}
    for name in read:
        last = [v for n, v in record if n == name][-1]
        assert read[name] == (last.decode("utf-8", "replace") if last is not None else "")


@fast
@given(headers=HEADERS, drop=st.lists(NAMES, max_size=3))
def test_stored_http_headers_hold_no_credential(headers: dict[str, str], drop: list[str]) -> None:
    stored = json.loads(kh.http_headers_json(without_headers(headers, tuple(drop))))
    assert not set(stored) & kh.SECRET_HTTP_HEADERS
    assert not {name.lower() for name in drop} & set(stored)


@fast
@given(text=st.text(max_size=120))
def test_token_parser_never_raises(text: str) -> None:
    parsed = parse_token(text)
    assert parsed is None or text == f"sot_{parsed[0]}_{parsed[1]}"


# ---- where the ingress headers are read back -------------------------------------------------

INGRESS_NAMES = st.sampled_from(
    [kh.EVENT_ID, kh.SOURCE, kh.EVENT_TYPE, kh.RECEIVED_AT, kh.HTTP_HEADERS, kh.CONTENT_TYPE,
     kh.TRACEPARENT, kh.CONNECTOR, kh.ENDPOINT, kh.FLOW_ID]
)  # fmt: skip
RECORD_HEADERS = st.lists(
    st.tuples(st.one_of(INGRESS_NAMES, st.text(max_size=10)), st.binary(max_size=80)), max_size=10
)


@fast
@given(
    headers=RECORD_HEADERS,
    key=st.one_of(st.none(), st.binary(max_size=20)),
    value=st.one_of(st.none(), BODIES),
    timestamp=st.one_of(st.none(), st.integers(min_value=-1, max_value=2**63 - 1)),
    present=st.booleans(),
)
def test_record_readers_raise_only_the_road_errors(
    headers: list[tuple[str, bytes]],
    key: bytes | None,
    value: bytes | None,
    timestamp: int | None,
    present: bool,
) -> None:
    from streams.event_log.rows import to_row
    from streams.integration.delivery import source_event
    from streams.road.record import RoadRecord
    from synapseops.errors import Undecodable

    if present:  # most records carry the ids; the rest of the headers is still garbage
        headers = [(kh.EVENT_ID, b"e-1"), (kh.SOURCE, b"s"), (kh.CONNECTOR, b"c"),
                   (kh.ENDPOINT, b"e"), *headers]  # fmt: skip
    record = RoadRecord("t", 0, 1, timestamp, key, value, headers)
    try:
        event = source_event(record)
        assert event.event_id and event.connector and event.endpoint
    except SchemaInvalid:
        pass
    try:
        row = to_row(key, value, headers, "t", 0, 1, timestamp)
        assert row.event_id and row.source and row.received_at.tzinfo is not None
    except (SchemaInvalid, Undecodable):
        pass
