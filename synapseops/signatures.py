"""Webhook signature schemes, verified over the raw request bytes, in constant time.

Each verifier raises :class:`SignatureInvalid` with a reason a sender can act on (the API answers
401 with it); it never says which secret was tried or what the expected digest was.

- Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]``, HMAC-SHA256 of ``"{t}.{body}"``
  keyed with the whole ``whsec_…`` string; any ``v1`` may match any configured secret (rotation);
  the timestamp must be within the tolerance.
- Shopify: ``X-Shopify-Hmac-Sha256``: base64 HMAC-SHA256 of the body.
- Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<b64> …``;
  HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` keyed with the base64 part of ``whsec_…``.
- Generic HMAC: a named header holding hex HMAC-SHA256 of the body, optionally ``sha256=``
  prefixed (GitHub's ``X-Hub-Signature-256`` shape).
- Token: the request carries a shared secret (``Authorization: Bearer <secret>`` or a named
  header's raw value); it authenticates the sender, not the bytes.

Whatever the input, a verifier either returns or raises :class:`SignatureInvalid` (garbage
headers included: a property test holds them to that).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from synapseops.errors import SignatureInvalid

# The schemes a webhook source can choose (``none``: unsigned, chosen explicitly).
SCHEMES = ("shopify", "standard_webhooks", "hmac_hex", "none")
DEFAULT_HMAC_HEADER = "X-Signature-256"


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _check_timestamp(timestamp: int, tolerance_s: int, now: float | None) -> None:
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureInvalid(
            f"timestamp {timestamp} is outside the {tolerance_s}s tolerance "
            "(a replayed delivery or clock skew)"
        )


def verify_stripe(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> int:
    """Verify a Stripe webhook; returns the signed timestamp."""
    if not secrets:
        raise SignatureInvalid("no Stripe webhook secret is configured")
    if not header:
        raise SignatureInvalid("missing Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[bytes] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureInvalid("Stripe-Signature timestamp is not an integer") from None
        elif name == "v1":
            try:
                signatures.append(bytes.fromhex(value))
            except ValueError:
                continue
    if timestamp is None:
        raise SignatureInvalid("Stripe-Signature has no timestamp (t=)")
    if not signatures:
        raise SignatureInvalid("Stripe-Signature has no v1 signature")
    signed = str(timestamp).encode() + b"." + body
    expected = [_hmac_sha256(secret.encode(), signed) for secret in secrets]
    # Compare every pair so the time taken does not depend on which one matched.
    matched = False
    for candidate in signatures:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise SignatureInvalid("no v1 signature matches the body for any configured secret")
    _check_timestamp(timestamp, tolerance_s, now)
    return timestamp


def verify_shopify(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    given = _header(headers, "X-Shopify-Hmac-Sha256")
    if not given:
        raise SignatureInvalid("missing X-Shopify-Hmac-Sha256 header")
    try:
        candidate = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("X-Shopify-Hmac-Sha256 is not base64") from None
    if not hmac.compare_digest(candidate, _hmac_sha256(secret.encode(), body)):
        raise SignatureInvalid("X-Shopify-Hmac-Sha256 does not match the body")


def verify_standard_webhooks(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> None:
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signature_header = _header(headers, "webhook-signature")
    if not (msg_id and stamp and signature_header):
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureInvalid("webhook-timestamp is not an integer") from None
    key_text = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(key_text)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("the configured Standard Webhooks secret is not base64") from None
    try:
        signed_prefix = f"{msg_id}.{timestamp}.".encode()
    except UnicodeEncodeError:
        raise SignatureInvalid("webhook-id is not text") from None
    expected = _hmac_sha256(key, signed_prefix + body)
    matched = False
    for part in signature_header.split():
        version, _, value = part.partition(",")
        if version != "v1":
            continue
        try:
            matched |= hmac.compare_digest(base64.b64decode(value), expected)
        except (binascii.Error, ValueError):
            continue
    if not matched:
        raise SignatureInvalid("no v1 webhook-signature matches the body")
    _check_timestamp(timestamp, tolerance_s, now)


def verify_hmac_hex(body: bytes, headers: Mapping[str, str], secret: str, header: str) -> None:
    given = _header(headers, header)
    if not given:
        raise SignatureInvalid(f"missing {header} header")
    given = given.removeprefix("sha256=")
    try:
        candidate = bytes.fromhex(given)
    except ValueError:
        raise SignatureInvalid(f"{header} is not hex") from None
    if not hmac.compare_digest(candidate, _hmac_sha256(secret.encode(), body)):
        raise SignatureInvalid(f"{header} does not match the body")


def verify_token(
    headers: Mapping[str, str], secrets: Sequence[str], header: str | None = None
) -> None:
    """The request carries one of ``secrets``: as ``Authorization: Bearer <secret>``, or as
    the whole value of ``header`` when one is named."""
    if not secrets:
        raise SignatureInvalid("no token is configured for this source")
    if header is None:
        given = _header(headers, "authorization") or ""
        scheme, _, value = given.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise SignatureInvalid("missing Authorization: Bearer <source token>")
        value = value.strip()
    else:
        value = _header(headers, header) or ""
        if not value:
            raise SignatureInvalid(f"missing {header} header")
    try:
        presented = value.encode()
    except UnicodeEncodeError:
        raise SignatureInvalid("the source token is not text") from None
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(presented, secret.encode())
    if not matched:
        raise SignatureInvalid("the source token is not the configured one")


def chosen_scheme(scheme: str | None) -> str:
    """``scheme``, or :class:`SignatureInvalid` when nobody chose one (NULL): an endpoint
    accepts unsigned deliveries only when ``none`` was set explicitly."""
    if scheme is None:
        raise SignatureInvalid(
            "this endpoint has no signature scheme chosen yet; an admin sets signature_scheme "
            f"to one of {', '.join(SCHEMES)} ('none' accepts unsigned deliveries)"
        )
    return scheme


def verify_scheme(
    scheme: str,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    *,
    header: str | None = None,
) -> None:
    """Raise :class:`SignatureInvalid` unless ``body`` is signed as ``scheme`` says with one
    of ``secrets`` (several while rotating); ``none`` accepts anything."""
    if scheme == "none":
        return
    if scheme not in SCHEMES:
        raise SignatureInvalid(f"unknown signature scheme {scheme!r}")
    if not secrets:
        raise SignatureInvalid(f"the endpoint's {scheme} signature has no signing secret set")
    last: SignatureInvalid | None = None
    for secret in secrets:
        try:
            if scheme == "shopify":
                verify_shopify(body, headers, secret)
            elif scheme == "standard_webhooks":
                verify_standard_webhooks(body, headers, secret)
            else:
                verify_hmac_hex(body, headers, secret, header or DEFAULT_HMAC_HEADER)
            return
        except SignatureInvalid as exc:
            last = exc
    assert last is not None
    raise last


def sign_stripe(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` value for ``body`` — for the sandbox, the demo and tests."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = _hmac_sha256(secret.encode(), str(stamp).encode() + b"." + body).hex()
    return f"t={stamp},v1={digest}"


def sign_hmac_hex(body: bytes, secret: str) -> str:
    """``sha256=<hex>`` for ``body``, the shape :func:`verify_hmac_hex` takes."""
    return "sha256=" + _hmac_sha256(secret.encode(), body).hex()


def sign_standard_webhooks(body: bytes, secret: str, msg_id: str, timestamp: int) -> str:
    """A ``webhook-signature`` value (``v1,<base64>``) for the sandbox, the demo and tests."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = _hmac_sha256(key, f"{msg_id}.{timestamp}.".encode() + body)
    return "v1," + base64.b64encode(digest).decode()
