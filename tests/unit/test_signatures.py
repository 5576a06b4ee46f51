"""Webhook signatures: signed by the real ``stripe`` package, verified over raw bytes."""

import base64
import hashlib
import hmac
import json
import time

import pytest
import stripe

from synapseops import signatures
from synapseops.errors import SignatureInvalid
from tests.fixtures import SAMPLES

FIXTURES = SAMPLES
SECRET = "whsec_test_primary"
ROTATED = "whsec_test_next"


@pytest.fixture(scope="module")
def body() -> bytes:
    return (FIXTURES / "stripe" / "events" / "payment_intent.succeeded.json").read_bytes()


def stripe_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp
    )


def test_valid_signature_is_accepted(body: bytes) -> None:
    now = int(time.time())
    assert signatures.verify_stripe(body, stripe_header(body, SECRET, now), [SECRET]) == now


def test_wrong_secret_is_refused(body: bytes) -> None:
    with pytest.raises(SignatureInvalid, match="no v1 signature matches"):
        signatures.verify_stripe(body, stripe_header(body, "whsec_wrong"), [SECRET])


def test_rotated_secret_matches_any_configured(body: bytes) -> None:
    signatures.verify_stripe(body, stripe_header(body, ROTATED), [SECRET, ROTATED])
    # During rotation Stripe sends one v1 per active secret; either may match.
    both = stripe_header(body, "whsec_gone") + "," + stripe_header(body, SECRET).split(",")[1]
    signatures.verify_stripe(body, both, [SECRET])


def test_stale_timestamp_is_refused(body: bytes) -> None:
    old = int(time.time()) - 301
    with pytest.raises(SignatureInvalid, match="tolerance"):
        signatures.verify_stripe(body, stripe_header(body, SECRET, old), [SECRET])
    signatures.verify_stripe(body, stripe_header(body, SECRET, old), [SECRET], tolerance_s=600)


def test_tampered_body_is_refused(body: bytes) -> None:
    header = stripe_header(body, SECRET)
    event = json.loads(body)
    event["data"]["object"]["amount"] = 1
    with pytest.raises(SignatureInvalid):
        signatures.verify_stripe(json.dumps(event).encode(), header, [SECRET])
    # Re-serialising the same JSON changes the bytes: verification must use the raw body.
    with pytest.raises(SignatureInvalid):
        signatures.verify_stripe(json.dumps(json.loads(body)).encode(), header, [SECRET])


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Stripe-Signature"),
        ("v1=abcd", "no timestamp"),
        ("t=123", "no v1 signature"),
        ("t=abc,v1=00", "not an integer"),
    ],
)
def test_malformed_headers_say_why(body: bytes, header: str | None, reason: str) -> None:
    with pytest.raises(SignatureInvalid, match=reason):
        signatures.verify_stripe(body, header, [SECRET])


def test_no_secret_configured_is_refused(body: bytes) -> None:
    with pytest.raises(SignatureInvalid, match="no Stripe webhook secret"):
        signatures.verify_stripe(body, stripe_header(body, SECRET), [])


def test_our_signer_matches_stripes(body: bytes) -> None:
    assert signatures.sign_stripe(body, SECRET, 1700000000) == stripe_header(
        body, SECRET, 1700000000
    )


def test_shopify_hmac_over_raw_body() -> None:
    body = (FIXTURES / "shopify" / "order.json").read_bytes()
    good = base64.b64encode(hmac.new(b"shpss", body, hashlib.sha256).digest()).decode()
    signatures.verify_shopify(body, {"X-Shopify-Hmac-Sha256": good}, "shpss")
    with pytest.raises(SignatureInvalid, match="does not match"):
        signatures.verify_shopify(body + b" ", {"x-shopify-hmac-sha256": good}, "shpss")
    with pytest.raises(SignatureInvalid, match="missing"):
        signatures.verify_shopify(body, {}, "shpss")


def test_standard_webhooks() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"type":"contact.created"}'
    now = int(time.time())
    digest = hmac.new(key, f"msg_1.{now}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": "v1,bm90LWl0 v1," + base64.b64encode(digest).decode(),
    }
    signatures.verify_standard_webhooks(body, headers, secret)
    with pytest.raises(SignatureInvalid):
        signatures.verify_standard_webhooks(body + b"x", headers, secret)


def test_generic_hmac_hex_github_shape() -> None:
    body = (FIXTURES / "github" / "push.json").read_bytes()
    digest = hmac.new(b"gh", body, hashlib.sha256).hexdigest()
    signatures.verify_hmac_hex(
        body, {"X-Hub-Signature-256": f"sha256={digest}"}, "gh", "X-Hub-Signature-256"
    )
    with pytest.raises(SignatureInvalid, match="not hex"):
        signatures.verify_hmac_hex(body, {"X-Hub-Signature-256": "zz"}, "gh", "X-Hub-Signature-256")
