"""The finance ledger's idempotency, over real HTTP: replay, mismatch, in flight, missing key."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.harness import SandboxServer
from tests.fixtures import SAMPLES

pytestmark = pytest.mark.integration

SETTLEMENTS = "/finance/v1/settlements"
STRIPE_INTENT = SAMPLES / "stripe/events/payment_intent.succeeded.json"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with SandboxServer() as sandbox, httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


def _settlement(payment_id: str = "pi_1", amount: int = 2000) -> dict[str, object]:
    return {"payment_id": payment_id, "amount": amount, "currency": "usd", "kind": "charge"}


def _settle(client: httpx.Client, key: str | None, body: dict[str, object]) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(SETTLEMENTS, json=body, headers=headers)


def test_settlement_from_a_real_stripe_intent_lands_in_the_ledger(client: httpx.Client) -> None:
    intent = json.loads(STRIPE_INTENT.read_text())["data"]["object"]
    body = {
        "payment_id": intent["id"],
        "amount": intent["amount"],
        "currency": intent["currency"],
        "kind": "charge",
        "event_id": "evt_1",
    }
    response = _settle(client, f"settle:{intent['id']}", body)
    assert response.status_code == 201
    assert response.json()["reference"].startswith("fin_")
    (entry,) = client.get("/_sandbox/finance/ledger").json()["entries"]
    assert entry["key"] == f"settle:{intent['id']}"
    assert (entry["payment_id"], entry["amount"], entry["currency"]) == (
        intent["id"],
        190200,
        "usd",
    )
    assert entry["reference"] == response.json()["reference"]
    assert entry["metadata"] == {"event_id": "evt_1"}


def test_same_key_same_body_replays_the_stored_response(client: httpx.Client) -> None:
    first = _settle(client, "key-1", _settlement())
    again = _settle(client, "key-1", _settlement())
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert client.get("/_sandbox/finance/ledger").json()["count"] == 1
    received = client.get("/_sandbox/finance/received").json()
    assert [r["replayed"] for r in received] == [False, True]


def test_same_key_different_body_is_422(client: httpx.Client) -> None:
    _settle(client, "key-2", _settlement(amount=2000))
    response = _settle(client, "key-2", _settlement(amount=2001))
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert client.get("/_sandbox/finance/ledger").json()["count"] == 1


def test_same_key_while_the_first_is_in_flight_is_409(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"target": "finance", "latency_ms": 1500})
    results: dict[str, int] = {}

    def first() -> None:
        results["first"] = _settle(client, "key-3", _settlement()).status_code

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.4)  # the first request holds the key, inside its 1.5 s of work
    second = _settle(client, "key-3", _settlement())
    thread.join()
    assert second.status_code == 409
    assert second.json()["error"] == "idempotency_key_in_flight"
    assert results["first"] == 201
    client.delete("/_sandbox/faults")
    third = _settle(client, "key-3", _settlement())
    assert (third.status_code, third.headers["Idempotent-Replayed"]) == (201, "true")
    assert client.get("/_sandbox/finance/ledger").json()["count"] == 1


def test_missing_key_is_400_and_touches_nothing(client: httpx.Client) -> None:
    for key in (None, ""):
        response = _settle(client, key, _settlement())
        assert response.status_code == 400
        assert response.json()["error"] == "idempotency_key_required"
    assert client.get("/_sandbox/finance/ledger").json()["count"] == 0
    assert client.get("/_sandbox/finance/received").json() == []


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 0},
        {"amount": -5},
        {"amount": 19.99},
        {"amount": "1999"},
        {"currency": "US"},
        {"currency": "u5d"},
        {"kind": "payout"},
        {"payment_id": ""},
    ],
)
def test_invalid_settlements_are_400_and_free_the_key(
    client: httpx.Client, change: dict[str, object]
) -> None:
    bad = {**_settlement(), **change}
    response = _settle(client, "key-4", bad)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["fields"]
    # Nothing was executed, so the key is still free for a corrected request.
    assert _settle(client, "key-4", _settlement()).status_code == 201


def test_business_rule_refusal_is_402_stored_and_replayed(client: httpx.Client) -> None:
    refused = _settle(client, "key-5", _settlement(payment_id="pi_reject_frozen"))
    assert refused.status_code == 402
    assert refused.json()["error"] == "account_frozen"
    again = _settle(client, "key-5", _settlement(payment_id="pi_reject_frozen"))
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (402, "true")
    assert client.get("/_sandbox/finance/ledger").json()["count"] == 0
    assert client.get("/_sandbox/finance/received").json() == []
    assert len(client.get("/_sandbox/finance/attempts").json()) == 2


def test_rules_are_configurable(client: httpx.Client) -> None:
    rules = {"reject_prefixes": {"pi_blocked": {"status": 403, "error": "kyc"}}, "max_amount": 500}
    assert client.put("/_sandbox/finance/rules", json=rules).status_code == 200
    assert (
        _settle(client, "a", _settlement(payment_id="pi_reject_x", amount=500)).status_code == 201
    )
    blocked = _settle(client, "b", _settlement(payment_id="pi_blocked_1", amount=10))
    assert (blocked.status_code, blocked.json()["error"]) == (403, "kyc")
    too_much = _settle(client, "c", _settlement(amount=501))
    assert (too_much.status_code, too_much.json()["error"]) == (402, "amount_exceeds_limit")


def test_ledger_has_one_entry_per_key_despite_faults_and_retries(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"target": "finance", "count": 3, "status": 503})
    statuses = []
    for key in ("p1", "p1", "p1", "p1", "p2", "p2", "p3"):
        statuses.append(_settle(client, key, _settlement(payment_id=f"pi_{key}")).status_code)
    assert statuses == [503, 503, 503, 201, 201, 201, 201]
    ledger = client.get("/_sandbox/finance/ledger").json()["entries"]
    assert sorted(e["key"] for e in ledger) == ["p1", "p2", "p3"]
    reference = ledger[0]["reference"]
    assert client.get(f"{SETTLEMENTS}/{reference}").json()["payment_id"] == "pi_p1"


def test_clearing_finance_received_clears_the_ledger_and_keys(client: httpx.Client) -> None:
    _settle(client, "k", _settlement())
    client.delete("/_sandbox/finance/received")
    assert client.get("/_sandbox/finance/ledger").json()["count"] == 0
    fresh = _settle(client, "k", _settlement(amount=1))
    assert fresh.status_code == 201
    assert "Idempotent-Replayed" not in fresh.headers
