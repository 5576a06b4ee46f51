"""Ingress under overload (api/overload.py) and the HTTP answer counter (api/middleware.py).

The app runs in process with a producer whose sends wait until the test lets them land, so
"the process holds all it may" is a state the test builds, not a timing. The producer's own
pending count is checked on a real librdkafka client that has no broker to deliver to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from api.main import create_app
from synapseops.errors import KafkaUnavailable
from synapseops.kafka import AsyncProducer, record_size
from synapseops.settings import (
    ApiSettings,
    DatabaseSettings,
    IngressSettings,
    KafkaSettings,
    Settings,
    SourceAuth,
)

SOURCE_TOKEN = "unit-source-token"
MAX_IN_FLIGHT = 4


class HeldProducer:
    """Sends that land only when ``release`` is set; ``pending_bytes`` as the test says."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.sent: list[bytes | None] = []
        self.pending_bytes = 0

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None = None,
        partition: int | None = None,
    ) -> tuple[int, int]:
        self.started += 1
        await self.release.wait()
        self.sent.append(value)
        return 0, len(self.sent)


def _settings(max_pending_bytes: int = 1 << 20) -> Settings:
    return Settings(
        api=ApiSettings(token=SecretStr("unit-test-token")),
        database=DatabaseSettings(url=SecretStr("postgresql+psycopg2://nobody@127.0.0.1:1/x")),
        ingress=IngressSettings(
            sources={"unit": SourceAuth(scheme="token", secret=SecretStr(SOURCE_TOKEN))},
            max_in_flight=MAX_IN_FLIGHT,
            max_pending_bytes=max_pending_bytes,
        ),
    )


@asynccontextmanager
async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on ``app`` in this loop, its lifespan run (the producer on its state)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


def _post(client: httpx.AsyncClient, event_id: str, body: bytes = b'{"a": 1}') -> Any:
    return client.post(
        "/webhooks/events/unit",
        content=body,
        headers={
            "Authorization": f"Bearer {SOURCE_TOKEN}",
            "Content-Type": "application/json",
            "Idempotency-Key": event_id,
        },
    )


def _count(outcome: str) -> float:
    labels = {"source": "unit", "outcome": outcome}
    return REGISTRY.get_sample_value("synapseops_ingress_requests_total", labels) or 0.0


async def _while_held(producer: HeldProducer, settings: Settings, extra: int) -> list[int]:
    """``MAX_IN_FLIGHT`` requests held in the producer, then ``extra`` more answered; the
    statuses of the extra ones, after which the held ones land."""
    app = create_app(settings, producer=producer)  # type: ignore[arg-type]
    async with _client(app) as client:
        held = [asyncio.ensure_future(_post(client, f"held-{n}")) for n in range(MAX_IN_FLIGHT)]
        for _ in range(500):
            if producer.started == MAX_IN_FLIGHT:
                break
            await asyncio.sleep(0.01)
        assert producer.started == MAX_IN_FLIGHT, [a.result().text for a in held if a.done()]
        refused = [await _post(client, f"extra-{n}") for n in range(extra)]
        for answer in refused:
            assert answer.headers["Retry-After"].isdigit(), answer.headers
            assert "overloaded" in answer.json()["detail"]
        # Only webhooks are bounded: the management API still answers.
        assert (await client.get("/api/v1/events/1")).status_code == 401
        producer.release.set()
        assert [(await answer).status_code for answer in held] == [202] * MAX_IN_FLIGHT
        # A place freed: the next one is taken again.
        assert (await _post(client, "after")).status_code == 202
    return [answer.status_code for answer in refused]


def test_past_max_in_flight_a_webhook_gets_503_with_retry_after_and_nothing_is_published() -> None:
    producer = HeldProducer()
    before = _count("overloaded")
    statuses = asyncio.run(_while_held(producer, _settings(), extra=3))
    assert statuses == [503, 503, 503]
    assert _count("overloaded") - before == 3
    # Only the held ones and the one after: no refused request reached the producer.
    assert len(producer.sent) == MAX_IN_FLIGHT + 1
    gauge = REGISTRY.get_sample_value("synapseops_ingress_in_flight")
    assert gauge == 0.0


async def _with_pending(pending: int, body: bytes) -> int:
    producer = HeldProducer()
    producer.release.set()
    producer.pending_bytes = pending
    app = create_app(_settings(max_pending_bytes=4096), producer=producer)  # type: ignore[arg-type]
    async with _client(app) as client:
        answer = await _post(client, f"p-{pending}-{len(body)}", body)
        if answer.status_code == 503:
            assert answer.headers["Retry-After"].isdigit()
        return int(answer.status_code)


@pytest.mark.parametrize(
    ("pending", "size", "status"),
    [
        (0, 100, 202),
        (3000, 100, 202),
        (4000, 500, 503),  # would pass the bound
        (0, 6000, 202),  # nothing pending: one event always fits (the body cap bounds it)
    ],
)
def test_an_event_that_would_pass_the_producers_pending_bytes_is_refused(
    pending: int, size: int, status: int
) -> None:
    body = b'{"pad": "' + b"x" * size + b'"}'
    assert asyncio.run(_with_pending(pending, body)) == status


def test_the_producer_counts_what_kafka_has_not_acknowledged() -> None:
    # No broker at that address: the records stay pending until their delivery times out.
    producer = AsyncProducer(
        KafkaSettings(bootstrap="127.0.0.1:1"),
        **{"delivery.timeout.ms": 1500, "socket.connection.setup.timeout.ms": 1000},
    )

    async def two() -> list[object]:
        sends = [
            asyncio.ensure_future(producer.send("t", b"x" * 100, key=b"k", headers=[("h", b"v")])),
            asyncio.ensure_future(producer.send("t", b"y" * 50)),
        ]
        await asyncio.sleep(0.05)
        assert producer.pending == 2
        assert producer.pending_bytes == record_size(b"k", b"x" * 100, [("h", b"v")]) + 50
        return list(await asyncio.gather(*sends, return_exceptions=True))

    try:
        answers = asyncio.run(two())
        assert all(isinstance(answer, KafkaUnavailable) for answer in answers)
        deadline = time.monotonic() + 5
        while producer.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (producer.pending, producer.pending_bytes) == (0, 0)
    finally:
        producer.close(timeout=1)


def test_every_answer_is_counted_by_route_template_and_status() -> None:
    producer = HeldProducer()
    producer.release.set()
    app = create_app(_settings(), producer=producer)  # type: ignore[arg-type]

    def count(route: str, status: str) -> float:
        labels = {"route": route, "status": status}
        return REGISTRY.get_sample_value("synapseops_http_requests_total", labels) or 0.0

    async def ask() -> int:
        async with _client(app) as client:
            assert (await _post(client, "counted")).status_code == 202
            assert (await client.get("/api/v1/events/12")).status_code == 401
            assert (await client.get("/no/such/path")).status_code == 404
            # No database behind this app: the probe answers 503, which is what an alert on
            # management 5xx must be able to see.
            return int((await client.get("/health")).status_code)

    wanted = [
        ("/webhooks/events/{source}", "202"),
        ("_unmatched", "401"),  # refused by the principal check, before any route matched
        ("_unmatched", "404"),
        ("/health", "503"),
    ]
    before = [count(*labels) for labels in wanted]
    assert asyncio.run(ask()) == 503
    after = [count(*labels) for labels in wanted]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1, 1]
