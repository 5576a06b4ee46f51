"""Pure parts of the integration sources: a polled page, a forwarded Kafka record's headers,
and the webhook signature schemes an endpoint may name."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from streams.integration.poller import read_page
from streams.integration.topic_sources import TopicSource, forwarded_headers
from streams.road.record import RoadRecord
from synapseops import headers as kh
from synapseops.errors import SignatureInvalid
from synapseops.signatures import chosen_scheme, verify_scheme

CONFIG = {"items_path": "changes", "next_cursor_path": "last_seq", "item_id_path": "seq",
          "entity_key_path": "id"}  # fmt: skip


def test_a_page_gives_items_with_ids_keys_exact_bodies_and_the_next_cursor() -> None:
    answer = {"changes": [{"seq": 3, "id": "51001", "n": 2**60}, {"id": "no-seq"}], "last_seq": 3}
    items, cursor = read_page(answer, CONFIG, 0)
    assert [(i.event_id, i.entity_key) for i in items] == [("3", "51001")]
    assert str(2**60).encode() in items[0].body
    assert cursor == 3
    assert read_page({"changes": []}, CONFIG, 7) == ([], 7)


def test_a_forwarded_record_keeps_its_headers_and_gets_a_stable_event_id() -> None:
    record = RoadRecord("orders.raw", 2, 41, None, b"k", b"{}", [("x-tenant", b"a")])
    headers = dict(forwarded_headers(record, TopicSource("erpfeed", "orders", "orders.raw")))
    assert headers[kh.EVENT_ID] == b"orders.raw/2/41"
    assert headers[kh.CONNECTOR] == b"erpfeed" and headers[kh.ENDPOINT] == b"orders"
    assert headers["x-tenant"] == b"a" and kh.TRACEPARENT in headers
    # The user's own id comes from the header the endpoint names, never from ours.
    own = RoadRecord("t", 0, 1, None, None, b"", [("ce_id", b"evt-9"), (kh.EVENT_ID, b"forged")])
    named = TopicSource("c", "e", "t", event_id_header="ce_id")
    assert dict(forwarded_headers(own, named))[kh.EVENT_ID] == b"evt-9"
    assert dict(forwarded_headers(own, TopicSource("c", "e", "t")))[kh.EVENT_ID] == b"t/0/1"


def test_signature_schemes() -> None:
    body = b'{"id": 1}'
    digest = hmac.new(b"s", body, hashlib.sha256).digest()
    verify_scheme(
        "shopify", body, {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}, ["s"]
    )
    verify_scheme("hmac_hex", body, {"X-Sig": "sha256=" + digest.hex()}, ["s"], header="X-Sig")
    verify_scheme("none", body, {}, [])
    with pytest.raises(SignatureInvalid, match="no signing secret"):
        verify_scheme("shopify", body, {}, [])
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_scheme("hmac_hex", body + b" ", {"X-Sig": digest.hex()}, ["s"], header="X-Sig")
    with pytest.raises(SignatureInvalid, match="unknown"):
        verify_scheme("rot13", body, {}, ["s"])
    with pytest.raises(SignatureInvalid, match="no signature scheme chosen"):
        chosen_scheme(None)
