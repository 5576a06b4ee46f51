"""The API app in-process (TestClient) with a recording producer instead of Kafka.

A fake producer is allowed here only: these tests check HTTP behaviour (auth, limits,
rejections, what is handed to the producer). tests/integration uses the real broker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from api.main import create_app
from synapseops import headers as kh
from synapseops.errors import KafkaUnavailable
from synapseops.settings import (
    ApiSettings,
    DatabaseSettings,
    IngressSettings,
    Settings,
    SourceAuth,
)
from topics.registry import INBOUND_EVENTS

TOKEN = "unit-test-token"
SOURCE_TOKEN = "unit-source-token"
SOURCE_AUTH = {"Authorization": f"Bearer {SOURCE_TOKEN}"}
LIMIT = 1024
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class RecordingProducer:
    """Stands in for AsyncProducer.send: records what would be published."""

    pending_bytes = 0  # what the ingress overload gate reads (nothing waits for Kafka here)

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
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
        return 3, 42


def make_settings() -> Settings:
    return Settings(
        api=ApiSettings(token=SecretStr(TOKEN), max_body_bytes=LIMIT),
        # Never connected to in these tests: the engine is lazy.
        database=DatabaseSettings(url=SecretStr("postgresql+psycopg2://nobody@127.0.0.1:1/x")),
        ingress=IngressSettings(
            sources={
                name: SourceAuth(scheme="token", secret=SecretStr(SOURCE_TOKEN))
                for name in ("unit", "unitshop")
            }
        ),
    )


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
def client(producer: RecordingProducer) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(), producer=producer)) as test_client:  # type: ignore[arg-type]
        yield test_client


def ingress_count(source: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "synapseops_ingress_requests_total", {"source": source, "outcome": outcome}
    )
    return value or 0.0


# ---- auth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer"),
        ("Bearer wrong-token", "invalid bearer token"),
        (f"Bearer {TOKEN}x", "invalid bearer token"),
        ("Bearer ", "must be 'Bearer"),
    ],
)
def test_api_v1_refuses_without_the_token(
    client: TestClient, authorization: str | None, reason: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for path in ("/api/v1/events", "/api/v1/events/1"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert reason in response.json()["detail"]


def test_every_api_v1_operation_demands_the_token(client: TestClient) -> None:
    # Walks the published OpenAPI document, so a route added later is covered without
    # touching this test: each must declare the bearer scheme and answer 401 without it.
    paths = client.get("/openapi.json").json()["paths"]
    v1 = {path: ops for path, ops in paths.items() if path.startswith("/api/v1")}
    assert v1
    for path, operations in v1.items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method, operation in operations.items():
            assert {"HTTPBearer": []} in operation.get("security", []), (method, path)
            response = client.request(method.upper(), concrete)
            assert response.status_code == 401, (method, path)


def test_open_routes_need_no_token(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "synapseops_ingress_requests_total" in metrics.text


# ---- ingress ---------------------------------------------------------------------------


def test_accepts_and_publishes_the_original_bytes(
    client: TestClient, producer: RecordingProducer
) -> None:
    raw = b'{ "id" : 450789469,\n  "type":"orders/create", "total": "409.94" }'
    before = ingress_count("unitshop", "accepted")
    response = client.post(
        "/webhooks/events/unitshop",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": "wh-1",
            "traceparent": TRACE,
            **SOURCE_AUTH,
        },
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["event_id"] == "wh-1"
    assert (body["topic"], body["partition"], body["offset"]) == (INBOUND_EVENTS.name, 3, 42)
    assert body["traceparent"].split("-")[1] == TRACE.split("-")[1]

    [record] = producer.sent
    assert record["value"] == raw
    assert record["key"] == b"450789469"
    headers = dict(record["headers"])
    assert headers[kh.EVENT_ID] == b"wh-1"
    assert headers[kh.SOURCE] == b"unitshop"
    assert headers[kh.EVENT_TYPE] == b"orders/create"
    assert headers[kh.TRACEPARENT] == body["traceparent"].encode()
    assert "authorization" not in json.loads(headers[kh.HTTP_HEADERS])
    assert ingress_count("unitshop", "accepted") == before + 1


@pytest.mark.parametrize(
    ("path", "content", "extra", "reason"),
    [
        ("/webhooks/events/unit", b"", {}, "empty body"),
        ("/webhooks/events/unit", b"<xml/>", {}, "not JSON"),
        ("/webhooks/events/unit", b'{"a": 1}', {}, "no event id"),
        ("/webhooks/events/unit", b"[1, 2]", {}, "no event id"),
        ("/webhooks/events/Unit", b'{"id": 1}', {}, "slug"),
        ("/webhooks/events/unit", b"{}", {"X-Event-Id": "e" * 600}, "longer than"),
    ],
)
def test_rejects_with_400_and_a_reason(
    client: TestClient,
    producer: RecordingProducer,
    path: str,
    content: bytes,
    extra: dict[str, str],
    reason: str,
) -> None:
    response = client.post(path, content=content, headers={**SOURCE_AUTH, **extra})
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert producer.sent == []


def test_declared_content_length_over_the_limit_is_413(
    client: TestClient, producer: RecordingProducer
) -> None:
    before = ingress_count("unit", "too_large")
    body = b'{"id": 1, "pad": "' + b"x" * LIMIT + b'"}'
    response = client.post("/webhooks/events/unit", content=body, headers=SOURCE_AUTH)
    assert response.status_code == 413
    assert str(LIMIT) in response.json()["detail"]
    assert producer.sent == []
    assert ingress_count("unit", "too_large") == before + 1


def test_chunked_body_over_the_limit_is_413(
    client: TestClient, producer: RecordingProducer
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"id": 1, "pad": "'
        for _ in range(8):
            yield b"x" * 256
        yield b'"}'

    response = client.post("/webhooks/events/unit", content=chunks(), headers=SOURCE_AUTH)
    assert response.status_code == 413
    assert producer.sent == []


def test_body_at_exactly_the_limit_is_accepted(
    client: TestClient, producer: RecordingProducer
) -> None:
    prefix, suffix = b'{"id": 1, "pad": "', b'"}'
    body = prefix + b"x" * (LIMIT - len(prefix) - len(suffix)) + suffix
    assert len(body) == LIMIT
    assert (
        client.post("/webhooks/events/unit", content=body, headers=SOURCE_AUTH).status_code == 202
    )
    assert producer.sent[0]["value"] == body


def test_kafka_unavailable_is_503_with_retry_after_and_nothing_claimed() -> None:
    producer = RecordingProducer(fail=KafkaUnavailable("broker down"))
    before = ingress_count("unit", "unavailable")
    with TestClient(create_app(make_settings(), producer=producer)) as client:  # type: ignore[arg-type]
        response = client.post(
            "/webhooks/events/unit", content=b'{"id": "evt_9"}', headers=SOURCE_AUTH
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "event_id" not in response.json()
    assert ingress_count("unit", "unavailable") == before + 1


def test_a_database_outage_answers_503_without_naming_the_database(
    client: TestClient,
) -> None:
    # The settings point at 127.0.0.1:1 as user "nobody": a real connection refusal.
    response = client.get("/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert "127.0.0.1" not in response.text and "nobody" not in response.text
    assert response.json()["detail"] == "the database is unavailable; retry later"
