"""``POST /webhooks/stripe`` in-process (TestClient) with a recording producer instead of Kafka.

A fake producer is allowed here only: these tests check the HTTP answers and what is handed
to the producer. ``tests/integration/test_stripe_webhooks.py`` does the same against the real
broker through uvicorn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from api.main import create_app
from synapseops import headers as kh
from synapseops.errors import KafkaUnavailable
from synapseops.settings import (
    ApiSettings,
    DatabaseSettings,
    Settings,
    StripeSettings,
)
from tests.fixtures import SAMPLES
from topics.registry import STRIPE_EVENTS

FIXTURES = SAMPLES / "stripe" / "events"
SECRET = "whsec_unit_http"
LIMIT = 8192
PATH = "/webhooks/stripe"


class RecordingProducer:
    """Stands in for AsyncProducer.send: records what would be published."""

    pending_bytes = 0  # what the ingress overload gate reads (nothing waits for Kafka here)

    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.sent: list[dict[str, Any]] = []

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None = None,
        partition: int | None = None,
    ) -> tuple[int, int]:
        if self.fail is not None:
            raise self.fail
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})
        return 1, 7


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
def client(producer: RecordingProducer) -> Iterator[TestClient]:
    settings = Settings(
        api=ApiSettings(token=SecretStr("unit"), max_body_bytes=LIMIT),
        database=DatabaseSettings(url=SecretStr("postgresql+psycopg2://nobody@127.0.0.1:1/x")),
        stripe=StripeSettings(webhook_secret=SecretStr(SECRET)),
    )
    with TestClient(create_app(settings, producer=producer)) as test_client:  # type: ignore[arg-type]
        yield test_client


def signature(raw: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        raw.decode(), secret, timestamp or int(time.time())
    )


def count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "synapseops_ingress_requests_total", {"source": "stripe", "outcome": outcome}
    )
    return value or 0.0


def test_a_signed_event_is_published_raw_keyed_by_its_payment(
    client: TestClient, producer: RecordingProducer
) -> None:
    raw = (FIXTURES / "payment_intent.payment_failed.json").read_bytes()
    before = count("accepted")
    response = client.post(
        PATH,
        content=raw,
        headers={
            "Stripe-Signature": signature(raw),
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": "Bearer must-not-travel",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "event_id": "evt_3PgafyB7WZ01zgkW1xQnT5Vb"}
    [record] = producer.sent
    assert record["topic"] == STRIPE_EVENTS.name
    assert record["value"] == raw
    assert record["key"] == b"pi_1PgafyB7WZ01zgkWSjxsAJo3"
    headers = dict(record["headers"])
    assert headers[kh.EVENT_ID] == b"evt_3PgafyB7WZ01zgkW1xQnT5Vb"
    assert headers[kh.SOURCE] == b"stripe"
    assert headers[kh.EVENT_TYPE] == b"payment_intent.payment_failed"
    assert headers[kh.CONTENT_TYPE] == b"application/json; charset=utf-8"
    assert headers[kh.TRACEPARENT].startswith(b"00-")
    assert headers[kh.RECEIVED_AT].endswith(b"Z")
    http = json.loads(headers[kh.HTTP_HEADERS])
    assert http["stripe-signature"].startswith("t=")
    assert "authorization" not in http
    assert count("accepted") == before + 1


def _tamper(raw: bytes) -> bytes:
    return raw.replace(b'"amount": 1099', b'"amount": 109900', 1)


@pytest.mark.parametrize(
    ("case", "status", "error", "reason", "outcome"),
    [
        ("wrong_secret", 401, "invalid_signature", "no v1 signature matches", "invalid_signature"),
        ("stale", 401, "invalid_signature", "tolerance", "invalid_signature"),
        ("tampered", 401, "invalid_signature", "no v1 signature matches", "invalid_signature"),
        ("missing", 401, "invalid_signature", "missing Stripe-Signature", "invalid_signature"),
        ("not_json", 400, "malformed_body", "not JSON", "invalid"),
        ("not_event", 400, "malformed_body", "envelope", "invalid"),
        ("oversize", 413, "body_too_large", "exceeds the limit", "too_large"),
    ],
)
def test_refusals_answer_with_a_reason_and_publish_nothing(
    client: TestClient,
    producer: RecordingProducer,
    case: str,
    status: int,
    error: str,
    reason: str,
    outcome: str,
) -> None:
    raw = (FIXTURES / "payment_intent.payment_failed.json").read_bytes()
    assert _tamper(raw) != raw
    body, sig = {
        "wrong_secret": (raw, signature(raw, "whsec_other")),
        "stale": (raw, signature(raw, timestamp=int(time.time()) - 301)),
        "tampered": (_tamper(raw), signature(raw)),
        "missing": (raw, None),
        "not_json": (b"{not json", signature(b"{not json")),
        "not_event": (b'{"id": "pi_1"}', signature(b'{"id": "pi_1"}')),
        "oversize": (b" " * (LIMIT + 1), signature(b" " * (LIMIT + 1))),
    }[case]
    before = count(outcome)
    headers = {"Stripe-Signature": sig} if sig is not None else {}
    response = client.post(PATH, content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert reason in response.json()["reason"]
    assert producer.sent == []
    assert count(outcome) == before + 1


def test_kafka_refusing_is_503_with_retry_after(
    client: TestClient, producer: RecordingProducer
) -> None:
    raw = (FIXTURES / "charge.refunded.json").read_bytes()
    producer.fail = KafkaUnavailable("broker down")
    response = client.post(PATH, content=raw, headers={"Stripe-Signature": signature(raw)})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "kafka_unavailable"


def test_the_route_is_in_openapi_without_bearer_security(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"][PATH]["post"]
    assert "security" not in operation
    assert {"400", "401", "413", "503"} <= set(operation["responses"])


def test_a_webhook_is_answered_without_a_thread_pool_hop(
    client: TestClient, producer: RecordingProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI runs a plain-``def`` dependency in anyio's thread pool: two hand-offs per
    # request for reading app.state were a third of the ingress' CPU (bench ingress, session
    # 6). Every webhook must be served on the event loop alone.
    import anyio.to_thread

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a webhook request went through the thread pool")

    monkeypatch.setattr(anyio.to_thread, "run_sync", refused)
    raw = (FIXTURES / "payment_intent.payment_failed.json").read_bytes()
    response = client.post(PATH, content=raw, headers={"Stripe-Signature": signature(raw)})
    assert response.status_code == 200, response.text
    assert len(producer.sent) == 1
