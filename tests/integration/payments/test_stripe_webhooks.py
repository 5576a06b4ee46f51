"""``POST /webhooks/stripe`` through uvicorn against the real broker.

Payloads are the Stripe event samples (``samples/stripe/events``: byte-for-byte copies of
public payloads, committed with their sources and licences), signed with the
real ``stripe`` package. Other tests may publish to ``payments.stripe.events`` at the same
time, so each request carries a unique ``traceparent`` and the records that arrived between
the partition end offsets read before and after are searched for that trace id: a refused
request must have put nothing there, an accepted one exactly its bytes.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import stripe
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from synapseops import headers as kh
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.settings import ApiSettings, KafkaSettings, Settings, StripeSettings
from tests.fixtures import SAMPLES
from topics.admin import apply_topics
from topics.registry import STRIPE_EVENTS

pytestmark = pytest.mark.integration

FIXTURES = SAMPLES / "stripe" / "events"
SECRET = f"whsec_it_{uuid.uuid4().hex}"
OLD_SECRET = f"whsec_it_old_{uuid.uuid4().hex}"
LIMIT = 64 * 1024
PAYMENT_KEYS = {
    "payment_intent.succeeded.json": "pi_1FG742B7kbjcJ8QqGKF6qIM0",
    "payment_intent.payment_failed.json": "pi_1PgafyB7WZ01zgkWSjxsAJo3",
    "charge.refunded.json": "ch_1PgafuB7WZ01zgkWXYmPNZs8",
}

Offsets = dict[int, int]


def new_trace() -> tuple[str, str]:
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


def sign(raw: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        raw.decode(), secret, timestamp or int(time.time())
    )


class TopicWatch:
    """End offsets of every partition of the Stripe topic, and the records after them."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(consumer_config(settings.kafka, f"test-stripe-{uuid.uuid4()}"))
        metadata = self.consumer.list_topics(STRIPE_EVENTS.name, timeout=10)
        self.partitions = sorted(metadata.topics[STRIPE_EVENTS.name].partitions)

    def ends(self) -> Offsets:
        return {p: self._end(p) for p in self.partitions}

    def _end(self, partition: int) -> int:
        # Right after a fresh broker created the topic, a partition's leadership may still be
        # settling: NOT_LEADER_FOR_PARTITION is retriable, so it is asked again (seen once,
        # failing a whole module's tests before any request was made).
        deadline = time.monotonic() + 20
        while True:
            try:
                _, high = self.consumer.get_watermark_offsets(
                    TopicPartition(STRIPE_EVENTS.name, partition), timeout=10, cached=False
                )
                return int(high)
            except KafkaException as exc:
                if not exc.args[0].retriable() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def records_between(self, before: Offsets, after: Offsets) -> list[Message]:
        wanted = {p: after[p] - before[p] for p in self.partitions if after[p] > before[p]}
        if not wanted:
            return []
        self.consumer.assign([TopicPartition(STRIPE_EVENTS.name, p, before[p]) for p in wanted])
        found: list[Message] = []
        deadline = time.monotonic() + 20
        while sum(wanted.values()) > 0 and time.monotonic() < deadline:
            message = self.consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            partition = message.partition() or 0
            if wanted.get(partition, 0) > 0 and (message.offset() or 0) < after[partition]:
                wanted[partition] -= 1
                found.append(message)
        self.consumer.unassign()
        assert sum(wanted.values()) == 0, f"records between the end offsets not read: {wanted}"
        return found

    def with_trace(self, before: Offsets, trace_id: str) -> list[Message]:
        records = self.records_between(before, self.ends())
        return [r for r in records if trace_id in kh.to_map(r.headers()).get(kh.TRACEPARENT, "")]

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture(scope="module")
def own_settings(settings: Settings, kafka_bootstrap: str, database_url: str) -> Settings:
    # The registry's topic (6 partitions), not one auto-created with a single partition.
    apply_topics(settings)
    return settings.model_copy(
        update={
            "api": ApiSettings(token=SecretStr("it"), max_body_bytes=LIMIT),
            # Rotation in progress: the new secret first, the old one still accepted.
            "stripe": StripeSettings(webhook_secret=SecretStr(f"{SECRET},{OLD_SECRET}")),
        }
    )


@pytest.fixture(scope="module")
def base_url(own_settings: Settings) -> Iterator[str]:
    with serving_in_thread(create_app(own_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def watch(own_settings: Settings) -> Iterator[TopicWatch]:
    topic_watch = TopicWatch(own_settings)
    yield topic_watch
    topic_watch.close()


def post(base_url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base_url}/webhooks/stripe", content=body, headers=headers, timeout=35)


@pytest.mark.parametrize("name", sorted(PAYMENT_KEYS))
@pytest.mark.parametrize("secret", ["new", "old"])
def test_a_signed_event_lands_byte_for_byte_keyed_by_its_payment(
    base_url: str, watch: TopicWatch, name: str, secret: str
) -> None:
    raw = (FIXTURES / name).read_bytes()
    event_id = json.loads(raw)["id"]
    trace_id, traceparent = new_trace()
    before = watch.ends()
    signature = sign(raw, SECRET if secret == "new" else OLD_SECRET)
    response = post(
        base_url,
        raw,
        {
            "Stripe-Signature": signature,
            "Content-Type": "application/json",
            "traceparent": traceparent,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "event_id": event_id}

    [record] = watch.with_trace(before, trace_id)
    assert record.value() == raw
    assert record.key() == PAYMENT_KEYS[name].encode()
    headers = kh.to_map(record.headers())
    assert headers[kh.EVENT_ID] == event_id
    assert headers[kh.SOURCE] == "stripe"
    assert headers[kh.EVENT_TYPE] == json.loads(raw)["type"]
    assert headers[kh.CONTENT_TYPE] == "application/json"
    assert headers[kh.RECEIVED_AT].endswith("Z")
    # The signature travels with the event, so the stored bytes stay verifiable.
    assert json.loads(headers[kh.HTTP_HEADERS])["stripe-signature"] == signature


def _tamper(raw: bytes) -> bytes:
    tampered = raw.replace(b'"amount_refunded": 100', b'"amount_refunded": 900', 1)
    assert tampered != raw
    return tampered


@pytest.mark.parametrize(
    ("case", "status", "error", "reason"),
    [
        ("wrong_secret", 401, "invalid_signature", "no v1 signature matches"),
        ("stale", 401, "invalid_signature", "outside the 300s tolerance"),
        ("tampered", 401, "invalid_signature", "no v1 signature matches"),
        ("missing", 401, "invalid_signature", "missing Stripe-Signature"),
        ("malformed_json", 400, "malformed_body", "not JSON"),
        ("not_an_event", 400, "malformed_body", "envelope"),
        ("oversize", 413, "body_too_large", "exceeds the limit"),
    ],
)
def test_a_refused_request_answers_why_and_publishes_nothing(
    base_url: str, watch: TopicWatch, case: str, status: int, error: str, reason: str
) -> None:
    raw = (FIXTURES / "charge.refunded.json").read_bytes()
    broken = raw[: len(raw) // 2]
    not_event = json.dumps(json.loads(raw)["data"]["object"]).encode()
    oversize = raw + b" " * LIMIT
    body, signature = {
        "wrong_secret": (raw, sign(raw, "whsec_someone_else")),
        "stale": (raw, sign(raw, timestamp=int(time.time()) - 301)),
        "tampered": (_tamper(raw), sign(raw)),
        "missing": (raw, None),
        "malformed_json": (broken, sign(broken)),
        "not_an_event": (not_event, sign(not_event)),
        "oversize": (oversize, sign(oversize)),
    }[case]
    trace_id, traceparent = new_trace()
    before = watch.ends()
    headers = {"traceparent": traceparent, "Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    response = post(base_url, body, headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert reason in response.json()["reason"]
    assert watch.with_trace(before, trace_id) == []


def test_an_oversize_chunked_body_is_counted_not_trusted(base_url: str) -> None:
    # No Content-Length: the limit must hold on the bytes actually read.
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 1024 + 2):
            yield b" " * 1024

    response = httpx.post(f"{base_url}/webhooks/stripe", content=chunks(), timeout=35)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_broker_that_does_not_take_the_event_is_503_with_retry_after(
    own_settings: Settings,
) -> None:
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{_dead_port()}")
    producer = AsyncProducer(kafka, **{"delivery.timeout.ms": 1500, "request.timeout.ms": 1000})
    raw = (FIXTURES / "payment_intent.succeeded.json").read_bytes()
    try:
        broken = own_settings.model_copy(update={"kafka": kafka})
        with serving_in_thread(create_app(broken, producer=producer)) as url:
            response = post(url, raw, {"Stripe-Signature": sign(raw)})
    finally:
        producer.close(timeout=1)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "kafka_unavailable"
