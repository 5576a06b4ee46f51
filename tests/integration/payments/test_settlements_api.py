"""``/api/v1/settlements`` over uvicorn against a fresh migrated database and the real broker.

Rows are written the way the settlement pipeline and the dead-letter store write them
(``sinks/payments/tables.py``, ``sinks/dead_letters/tables.py``); the module owns its database,
so every count and sum below is exact.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy
from confluent_kafka import Consumer, Message, TopicPartition
from pydantic import SecretStr

from api.main import create_app
from api.server import serving_in_thread
from sinks.dead_letters.tables import dead_letters
from sinks.payments.tables import (
    payment_events,
    settlement_attempts,
    settlement_audit,
    settlements,
)
from sinks.principals.store import create_token
from streams.payments.events import parse_command
from synapseops import headers as kh
from synapseops.kafka import consumer_config
from synapseops.principals import Role
from synapseops.settings import ApiSettings, DatabaseSettings, Settings
from tests.integration.databases import fresh_database
from topics.admin import apply_topics
from topics.registry import PAYMENT_SETTLEMENT, SETTLEMENT_COMMANDS, STRIPE_EVENTS

pytestmark = pytest.mark.integration

TOKEN = f"itest-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RAW_A = b'{"id": "evt_a", "object": "event", "type": "payment_intent.succeeded"}'


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour, 0, tzinfo=UTC)


def settlement(
    sid: str, pid: str, amount: int, currency: str, state: str, created: datetime, **extra: Any
) -> dict[str, Any]:
    return {
        "settlement_id": sid,
        "payment_id": pid,
        "kind": extra.pop("kind", "charge"),
        "amount": amount,
        "currency": currency,
        "state": state,
        "created_at": created,
        "updated_at": created,
        **extra,
    }


def event(
    eid: str, sid: str | None, received: datetime, outcome: str | None, raw: bytes | None = None
) -> dict[str, Any]:
    return {
        "event_id": eid,
        "payment_id": f"pi_{eid}",
        "settlement_id": sid,
        "event_type": "payment_intent.succeeded",
        "raw": raw or f'{{"id":"{eid}"}}'.encode(),
        "http_headers": {"stripe-signature": f"t=1,v1={eid}"},
        "topic": STRIPE_EVENTS.name,
        "partition": 0,
        "offset": abs(hash(eid)) % 10_000,
        "received_at": received,
        "processed_at": None if outcome is None else received,
        "outcome": outcome,
    }


def dead(
    n: int,
    eid: str | None,
    received: datetime,
    status: str = "dead",
    topic: str = STRIPE_EVENTS.name,
) -> dict[str, Any]:
    headers = {kh.RECEIVED_AT: received.isoformat().replace("+00:00", "Z")}
    if eid is not None:
        headers[kh.EVENT_ID] = eid
    return {
        "pipeline": PAYMENT_SETTLEMENT,
        "dlq_topic": f"{PAYMENT_SETTLEMENT}.dlq",
        "dlq_partition": 0,
        "dlq_offset": n,
        "original_topic": topic,
        "headers": headers,
        "dead_at": received + timedelta(minutes=30),
        "status": status,
    }


SETTLEMENTS = [
    settlement(
        "stl_a",
        "pi_a",
        1_000,
        "USD",
        "settled",
        at(2, 10),
        finance_reference="fin_1",
        settled_at=at(2, 10),
    ),
    settlement("stl_b", "pi_b", 500, "EUR", "failed", at(2, 11), reason="card_declined"),
    settlement("stl_c", "pi_c", 2_000_000, "USD", "pending_approval", at(2, 12)),
    settlement(
        "stl_d",
        "pi_d",
        3_000_000,
        "USD",
        "settled",
        at(3, 9),
        approved_by="user:ana",
        approved_at=at(3, 9),
        approval_decision="approve",
    ),
    settlement("stl_f", "pi_f", 700, "USD", "pending", at(3, 10)),
    settlement("stl_z", "pi_z", 250, "GBP", "settled", at(3, 11)),
    settlement("stl_r", "pi_a", 300, "USD", "settled", at(4, 8), kind="refund"),
]
# Day 2: every accepted event in one bucket. Day 3: evt_z settled by one delivery, another died.
EVENTS = [
    event("evt_a", "stl_a", at(2, 10), "settled", raw=RAW_A),
    event("evt_b", "stl_b", at(2, 11), "failed"),
    event("evt_c", "stl_c", at(2, 12), "pending_approval"),
    event("evt_d", "stl_d", at(2, 13), "pending_approval"),  # approved since: counts settled
    event("evt_e", None, at(2, 14), None),  # in flight
    event("evt_f", "stl_f", at(2, 15), None),  # stored, then died
    event("evt_g", "stl_a", at(2, 16), "ignored"),  # out of order
    event("evt_h", "stl_a", at(1, 23), "recorded"),  # the day before
    event("evt_z", "stl_z", at(3, 9), "settled"),
]
DEAD_LETTERS = [
    dead(1, "evt_f", at(2, 15)),
    dead(2, "evt_x", at(2, 17)),  # never stored (undecodable)
    dead(3, "evt_h", at(1, 23)),  # accepted the day before
    dead(4, "evt_y", at(2, 18), status="replayed"),
    dead(5, "cmd_1", at(2, 19), topic=SETTLEMENT_COMMANDS.name),
    dead(6, "evt_z", at(3, 9)),
]


def insert_each(conn: sqlalchemy.Connection, table: sqlalchemy.Table, rows: list[Any]) -> None:
    # One statement per row: the rows name different optional columns.
    for row in rows:
        conn.execute(sqlalchemy.insert(table).values(**row))


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[sqlalchemy.Engine]:
    with fresh_database(database_url, "test_settlements") as url:
        own = sqlalchemy.create_engine(url)
        try:
            with own.begin() as conn:
                insert_each(conn, settlements, SETTLEMENTS)
                insert_each(conn, payment_events, EVENTS)
                insert_each(conn, dead_letters, DEAD_LETTERS)
                insert_each(
                    conn,
                    settlement_attempts,
                    [
                        {
                            "settlement_id": "stl_a",
                            "event_id": "evt_a",
                            "started_at": at(2, 10),
                            "duration_ms": 40,
                            "request": {"amount": 1000, "currency": "USD"},
                            "response_status": 503,
                            "response_body": "busy",
                            "outcome": "retry",
                            "error_class": "TargetUnavailable",
                        },
                        {
                            "settlement_id": "stl_a",
                            "event_id": "evt_a",
                            "started_at": at(2, 10).replace(minute=1),
                            "duration_ms": 12,
                            "request": {"amount": 1000, "currency": "USD"},
                            "response_status": 201,
                            "response_body": '{"reference": "fin_1"}',
                            "outcome": "settled",
                        },
                    ],
                )
                insert_each(
                    conn,
                    settlement_audit,
                    [
                        {
                            "settlement_id": "stl_a",
                            "payment_id": "pi_a",
                            "at": at(2, 10),
                            "action": "created",
                            "actor": "stripe:evt_a",
                            "detail": {"state": "pending"},
                        },
                        {
                            "settlement_id": "stl_a",
                            "payment_id": "pi_a",
                            "at": at(2, 10).replace(minute=1),
                            "action": "settled",
                            "actor": "finance",
                            "detail": {"finance_reference": "fin_1"},
                        },
                    ],
                )
            yield own
        finally:
            own.dispose()


@pytest.fixture(scope="module")
def base_url(settings: Settings, kafka_bootstrap: str, engine: sqlalchemy.Engine) -> Iterator[str]:
    apply_topics(settings)
    url = engine.url.render_as_string(hide_password=False)
    own = settings.model_copy(
        update={
            "database": DatabaseSettings(url=SecretStr(url)),
            "api": ApiSettings(token=SecretStr(TOKEN)),
        }
    )
    with serving_in_thread(create_app(own)) as served:
        yield served


def get(base_url: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{base_url}/api/v1{path}", params=params, headers=AUTH, timeout=15)
    assert response.status_code == 200, response.text
    return response.json()


def ids(body: Any) -> list[str]:
    return [item["settlement_id"] for item in body["items"]]


def test_lists_newest_first_and_filters(base_url: str) -> None:
    assert ids(get(base_url, "/settlements")) == [
        "stl_r",
        "stl_z",
        "stl_f",
        "stl_d",
        "stl_c",
        "stl_b",
        "stl_a",
    ]
    assert ids(get(base_url, "/settlements", state="settled")) == [
        "stl_r",
        "stl_z",
        "stl_d",
        "stl_a",
    ]
    assert ids(get(base_url, "/settlements", currency="usd", state="settled")) == [
        "stl_r",
        "stl_d",
        "stl_a",
    ]
    window = get(
        base_url, "/settlements", since="2026-01-02T11:00:00Z", until="2026-01-03T10:00:00Z"
    )
    assert ids(window) == ["stl_d", "stl_c", "stl_b"]
    assert ids(get(base_url, "/settlements", payment_id="pi_a")) == ["stl_r", "stl_a"]
    assert get(base_url, "/settlements", currency="JPY") == {
        "items": [],
        "total": 0,
        "next_offset": None,
    }


def test_pages_with_offset_and_total(base_url: str) -> None:
    first = get(base_url, "/settlements", limit=3)
    assert (ids(first), first["total"], first["next_offset"]) == (["stl_r", "stl_z", "stl_f"], 7, 3)
    last = get(base_url, "/settlements", limit=3, offset=6)
    assert (ids(last), last["next_offset"]) == (["stl_a"], None)


@pytest.mark.parametrize(
    "params", [{"state": "done"}, {"currency": "US"}, {"limit": 0}, {"limit": 501}, {"offset": -1}]
)
def test_bad_filters_are_422(base_url: str, params: dict[str, Any]) -> None:
    response = httpx.get(f"{base_url}/api/v1/settlements", params=params, headers=AUTH)
    assert response.status_code == 422


def test_one_settlement_with_its_audit_trail(base_url: str) -> None:
    body = get(base_url, "/settlements/stl_a")
    assert (body["state"], body["amount"], body["finance_reference"]) == ("settled", 1000, "fin_1")
    events = {e["event_id"]: e for e in body["events"]}
    assert set(events) == {"evt_a", "evt_g", "evt_h"}
    assert base64.b64decode(events["evt_a"]["raw_base64"]) == RAW_A
    assert events["evt_a"]["raw_text"] == RAW_A.decode()
    assert events["evt_a"]["http_headers"] == {"stripe-signature": "t=1,v1=evt_a"}
    assert [a["outcome"] for a in body["attempts"]] == ["retry", "settled"]
    assert body["attempts"][0]["request"] == {"amount": 1000, "currency": "USD"}
    assert body["attempts"][1]["response_body"] == '{"reference": "fin_1"}'
    assert [(a["action"], a["actor"]) for a in body["audit"]] == [
        ("created", "stripe:evt_a"),
        ("settled", "finance"),
    ]
    assert body["approval"] is None
    approved = get(base_url, "/settlements/stl_d")["approval"]
    assert approved["decision"] == "approve"
    assert approved["actor"] == "user:ana"
    missing = httpx.get(f"{base_url}/api/v1/settlements/stl_nope", headers=AUTH)
    assert missing.status_code == 404


def read_command(settings: Settings, partition: int, offset: int) -> Message:
    consumer = Consumer(consumer_config(settings.kafka, f"test-cmd-{uuid.uuid4().hex}"))
    try:
        consumer.assign([TopicPartition(SETTLEMENT_COMMANDS.name, partition, offset)])
        for _ in range(100):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                return message
        raise AssertionError(f"no command at {SETTLEMENT_COMMANDS.name}[{partition}]@{offset}")
    finally:
        consumer.close()


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_is_a_command_on_the_topic_naming_the_principal(
    settings: Settings, base_url: str, engine: sqlalchemy.Engine, decision: str
) -> None:
    name = f"ana-{decision}"
    _, minted = create_token(engine, name=name, roles=[Role.APPROVER], created_by="test")
    response = httpx.post(
        f"{base_url}/api/v1/settlements/stl_c/{decision}",
        json={"reason": "checked with the customer"},
        headers={"Authorization": f"Bearer {minted.token}"},
        timeout=35,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["topic"] == SETTLEMENT_COMMANDS.name
    record = read_command(settings, body["partition"], body["offset"])
    assert record.key() == b"pi_c"
    command = json.loads(record.value() or b"")
    assert set(command) == {"settlement_id", "decision", "actor", "at", "reason"}
    assert (command["settlement_id"], command["decision"]) == ("stl_c", decision)
    # The approver is who authenticated, not anything the body said.
    assert (command["actor"], command["reason"]) == (f"token:{name}", "checked with the customer")
    assert datetime.fromisoformat(command["at"]).tzinfo is not None
    assert command == body["command"]
    # The worker's own reader takes it (streams.payments.events, the command contract).
    parsed = parse_command(record.value())
    assert (parsed.settlement_id, parsed.decision, parsed.actor) == (
        "stl_c",
        decision,
        f"token:{name}",
    )
    headers = kh.to_map(record.headers())
    assert headers[kh.SOURCE] == "api"
    assert headers[kh.EVENT_ID].startswith("cmd_")


def test_a_decision_without_a_body_is_by_the_bootstrap_admin(base_url: str) -> None:
    response = httpx.post(f"{base_url}/api/v1/settlements/stl_c/approve", headers=AUTH, timeout=35)
    assert response.status_code == 202, response.text
    assert response.json()["command"]["actor"] == "token:bootstrap"
    assert response.json()["command"]["reason"] is None


def test_a_decision_naming_someone_else_is_refused(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/api/v1/settlements/stl_c/approve",
        json={"actor": "user:ana", "reason": "me, honest"},
        headers=AUTH,
        timeout=35,
    )
    assert response.status_code == 422
    assert "authenticated principal" in response.text


@pytest.mark.parametrize(("sid", "status"), [("stl_a", 409), ("stl_f", 409), ("stl_nope", 404)])
def test_a_decision_needs_a_settlement_waiting_for_approval(
    base_url: str, sid: str, status: int
) -> None:
    response = httpx.post(f"{base_url}/api/v1/settlements/{sid}/reject", json={}, headers=AUTH)
    assert response.status_code == status
    assert sid in response.json()["detail"]


def test_daily_volumes_by_currency_and_state(base_url: str) -> None:
    rows = get(base_url, "/settlements/volumes/daily")["items"]
    assert [(r["day"], r["currency"], r["state"], r["count"], r["amount"]) for r in rows] == [
        ("2026-01-02", "EUR", "failed", 1, 500),
        ("2026-01-02", "USD", "pending_approval", 1, 2_000_000),
        ("2026-01-02", "USD", "settled", 1, 1_000),
        ("2026-01-03", "GBP", "settled", 1, 250),
        ("2026-01-03", "USD", "pending", 1, 700),
        ("2026-01-03", "USD", "settled", 1, 3_000_000),
        ("2026-01-04", "USD", "settled", 1, 300),
    ]
    one_day = get(base_url, "/settlements/volumes/daily", since="2026-01-03", until="2026-01-03")
    assert {r["day"] for r in one_day["items"]} == {"2026-01-03"}
    usd = get(base_url, "/settlements/volumes/daily", currency="usd")["items"]
    assert {r["currency"] for r in usd} == {"USD"} and len(usd) == 5


def test_reconciliation_puts_each_accepted_event_in_one_bucket(base_url: str) -> None:
    report = get(base_url, "/settlements/reconciliation", day="2026-01-02")
    buckets = ("accepted", "settled", "failed", "dead", "pending_approval", "pending", "no_effect")
    counts = {name: report[name]["count"] for name in buckets}
    # evt_a..g stored + evt_x dead before it was stored; evt_h (day 1), the replayed evt_y and
    # the dead command are not the day's.
    assert counts == {
        "accepted": 8,
        "settled": 2,
        "failed": 1,
        "dead": 2,
        "pending_approval": 1,
        "pending": 1,
        "no_effect": 1,
    }
    assert report["settled"]["amounts"] == {"USD": 3_001_000}
    assert report["failed"]["amounts"] == {"EUR": 500}
    assert report["pending_approval"]["amounts"] == {"USD": 2_000_000}
    assert report["dead"]["amounts"] == {"USD": 700}
    assert report["accepted"]["amounts"] == {"EUR": 500, "USD": 5_001_700}
    assert (report["accounted"], report["balanced"]) == (8, True)


def test_an_event_settled_by_a_duplicate_of_a_dead_delivery_counts_once(base_url: str) -> None:
    report = get(base_url, "/settlements/reconciliation", day="2026-01-03")
    assert (report["accepted"]["count"], report["settled"]["count"]) == (1, 1)
    assert report["dead"]["count"] == 0
    assert (report["accounted"], report["balanced"]) == (1, True)


def test_reconciliation_of_a_quiet_day_is_empty_and_balanced(base_url: str) -> None:
    report = get(base_url, "/settlements/reconciliation", day="2025-06-01")
    assert report["accepted"] == {"count": 0, "amounts": {}}
    assert report["balanced"] is True
    bad = httpx.get(
        f"{base_url}/api/v1/settlements/reconciliation", params={"day": "June"}, headers=AUTH
    )
    assert bad.status_code == 422
