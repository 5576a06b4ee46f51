"""The Stripe envelope's fast decoder (msgspec) accepts exactly what json.loads accepts, with
the same values, and every body it refuses is still decided by json.loads."""

from __future__ import annotations

import json

import pytest

from streams.payments.events import decode
from synapseops.errors import SchemaInvalid, Undecodable

ENVELOPE = {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "n": 2**70}


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(ENVELOPE).encode(),
        json.dumps(ENVELOPE, ensure_ascii=False).encode("utf-8") + b" ",
        b"\xef\xbb\xbf" + json.dumps(ENVELOPE).encode(),  # a UTF-8 BOM: msgspec refuses it
        json.dumps(ENVELOPE).encode("utf-16"),  # UTF-16: json.loads detects it
        json.dumps({**ENVELOPE, "x": float("nan")}).encode(),  # NaN: json.loads takes it
    ],
)
def test_what_json_loads_accepts_decodes_to_the_same_values(raw: bytes) -> None:
    assert json.dumps(decode(raw), sort_keys=True) == json.dumps(json.loads(raw), sort_keys=True)


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe\x00", b'{"a": 1}x'])
def test_what_json_loads_refuses_is_undecodable(raw: bytes) -> None:
    with pytest.raises(Undecodable):
        decode(raw)


def test_json_that_is_not_an_event_envelope_is_refused() -> None:
    with pytest.raises(SchemaInvalid, match="envelope"):
        decode(b'{"object": "charge"}')
