"""The finance batch API over real HTTP, and the client that uses it or falls back without it.

The sandbox ledger runs as a real uvicorn server; the client is the product's FinanceClient.
Both fail on the code as it was: the ledger had no ``/v1/settlements/batch`` route (404) and
the client no ``settle_many``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.harness import SandboxServer
from sinks.payments.finance import FinanceClient, FinanceReceipt, SettlementRequest
from synapseops.errors import FinanceRefused, TargetRejected, TargetUnavailable

pytestmark = pytest.mark.integration

SINGLE = "/finance/v1/settlements"
BATCH = "/finance/v1/settlements/batch"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


def _body(payment_id: str = "pi_1", amount: int = 2000) -> dict[str, Any]:
    return {"payment_id": payment_id, "amount": amount, "currency": "usd", "kind": "charge"}


def _item(key: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"idempotency_key": key, "body": body}


def _batch(client: httpx.Client, *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(BATCH, json={"items": list(items)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def _ledger(client: httpx.Client) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = client.get("/_sandbox/finance/ledger").json()["entries"]
    return entries


def test_a_batch_books_each_item_once_and_answers_per_item(client: httpx.Client) -> None:
    client.post(SINGLE, json=_body("pi_s"), headers={"Idempotency-Key": "k-single"})
    results = _batch(
        client,
        _item("k-1", _body("pi_1")),
        _item("k-2", _body("pi_2", amount=0)),  # invalid: 422, nothing booked
        _item("k-single", _body("pi_s")),  # sent alone before: the stored answer
        _item("k-single", _body("pi_s", amount=1)),  # same key, another body: 409
        _item("k-3", _body("pi_reject_3")),  # a business refusal, stored like a booking
        {"body": _body("pi_4")},  # no key: invalid item
    )
    assert [r["status"] for r in results] == [201, 422, 201, 409, 402, 422]
    assert results[0]["body"]["reference"].startswith("fin_")
    assert results[1]["body"]["error"] == "invalid_request" and results[1]["body"]["fields"]
    assert (results[2]["replayed"], results[3]["body"]["error"]) == (True, "idempotency_key_reused")
    assert results[4]["body"]["error"] == "account_frozen"
    assert sorted(e["key"] for e in _ledger(client)) == ["k-1", "k-single"]

    again = _batch(client, _item("k-1", _body("pi_1")), _item("k-2", _body("pi_2")))
    assert [(r["status"], r["replayed"]) for r in again] == [(201, True), (201, False)]
    assert again[0]["body"] == results[0]["body"]
    single = client.post(SINGLE, json=_body("pi_2"), headers={"Idempotency-Key": "k-2"})
    assert single.headers["Idempotent-Replayed"] == "true"
    assert sorted(e["key"] for e in _ledger(client)) == ["k-1", "k-2", "k-single"]


def test_faults_apply_to_a_batch_and_its_keys_stay_in_flight_during_latency(
    client: httpx.Client,
) -> None:
    client.post("/_sandbox/faults", json={"target": "finance", "count": 1, "status": 503})
    failed = client.post(BATCH, json={"items": [_item("k-1", _body())]})
    assert failed.status_code == 503
    assert _ledger(client) == []

    client.post("/_sandbox/faults", json={"target": "finance", "latency_ms": 1200})
    answers: dict[str, Any] = {}
    slow = threading.Thread(
        target=lambda: answers.update(first=_batch(client, _item("k-1", _body())))
    )
    slow.start()
    time.sleep(0.4)  # the batch holds k-1 while it spends its latency
    second = client.post(SINGLE, json=_body(), headers={"Idempotency-Key": "k-1"})
    slow.join()
    assert (second.status_code, second.json()["error"]) == (409, "idempotency_key_in_flight")
    assert answers["first"][0]["status"] == 201
    client.delete("/_sandbox/faults")
    assert len(_ledger(client)) == 1


def test_a_ledger_without_the_batch_api_answers_404(client: httpx.Client) -> None:
    client.put("/_sandbox/finance/rules", json={"batch_api": False}).raise_for_status()
    response = client.post(BATCH, json={"items": [_item("k", _body())]})
    assert response.status_code == 404
    assert _ledger(client) == []


def _requests(count: int, prefix: str = "pi") -> list[SettlementRequest]:
    return [
        SettlementRequest(f"stl_{prefix}_{i}_charge", f"{prefix}_{i % 5}", "charge", 100 + i, "USD")
        for i in range(count)
    ]


def _posts(client: httpx.Client) -> list[str]:
    return [a["path"] for a in client.get("/_sandbox/finance/attempts").json()]


@pytest.mark.parametrize("batch_api", [True, False])
def test_the_client_books_many_with_or_without_the_batch_api(
    sandbox: SandboxServer, client: httpx.Client, batch_api: bool
) -> None:
    client.put("/_sandbox/finance/rules", json={"batch_api": batch_api}).raise_for_status()
    finance = FinanceClient(f"{sandbox.url}/finance", timeout_s=5)
    requests = [*_requests(40), SettlementRequest("stl_bad", "pi_reject_9", "charge", 5, "USD")]

    async def book() -> tuple[list[Any], list[Any]]:
        first = await finance.settle_many(requests)
        second = await finance.settle_many(requests[:3])  # a replay: the stored answers
        await finance.aclose()
        return first, second

    first, second = asyncio.run(book())
    assert all(isinstance(a, FinanceReceipt) for a in first[:-1])
    assert isinstance(first[-1], FinanceRefused) and first[-1].reason == "account_frozen"
    assert [a.reference for a in second] == [a.reference for a in first[:3]]
    assert all(a.replayed for a in second)
    ledger = _ledger(client)
    assert sorted(e["key"] for e in ledger) == sorted(r.settlement_id for r in requests[:-1])
    posts = _posts(client)
    if batch_api:
        assert (finance.batch_api, posts) == (True, [BATCH, BATCH])
    else:
        # Detected once (one 404), remembered: every booking after it is a single POST.
        assert finance.batch_api is False
        assert posts == [BATCH] + [SINGLE] * (len(requests) + 3)
        # Chained per payment: one payment's settlements reached the ledger in the order given.
        for payment in {r.payment_id for r in requests[:-1]}:
            mine = [e["key"] for e in ledger if e["payment_id"] == payment]
            given = [r.settlement_id for r in requests[:-1] if r.payment_id == payment]
            assert mine == given


def test_the_client_maps_per_item_and_whole_batch_failures(
    sandbox: SandboxServer, client: httpx.Client
) -> None:
    finance = FinanceClient(f"{sandbox.url}/finance", timeout_s=5)
    requests = _requests(3)
    reused = SettlementRequest(requests[0].settlement_id, "pi_0", "charge", 999, "USD")

    async def book() -> tuple[list[Any], list[Any], list[Any]]:
        down = await finance.settle_many(requests)
        booked = await finance.settle_many(requests)
        conflicting = await finance.settle_many([reused, *_requests(1, "px")])
        await finance.aclose()
        return down, booked, conflicting

    client.post("/_sandbox/faults", json={"target": "finance", "count": 1, "status": 503})
    down, booked, conflicting = asyncio.run(book())
    assert all(isinstance(a, TargetUnavailable) and a.status == 503 for a in down)
    assert all(isinstance(a, FinanceReceipt) for a in booked)
    assert isinstance(conflicting[0], TargetRejected) and conflicting[0].status == 409
    assert isinstance(conflicting[1], FinanceReceipt)
    assert len(_ledger(client)) == 4
