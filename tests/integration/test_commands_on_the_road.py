"""Commands on the road, end to end: an approval or a re-run that failed once still settles or
delivers exactly once — through a retry tier, and through a dead letter and its replay.

Real Kafka, PostgreSQL, the sandbox (finance ledger, ERP) as a real HTTP server, the real API
publishing the command, and a real ``synapseops worker`` subprocess (tiers 2s,4s,8s). Before
the fix, the command's retry-tier copy was handled as the pipeline's *other* input (a Stripe
event, a source event), dead-lettered ``SchemaInvalid`` and never recovered: the settlement
stayed ``pending`` with ``approved_by`` set, the replay gave the same dead letter.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import select

from api.main import create_app
from api.server import serving_in_thread
from sandbox.harness import SandboxServer
from sinks.dead_letters.tables import dead_letters
from sinks.integration.tables import SUCCEEDED
from sinks.payments.tables import settlement_attempts, settlements
from synapseops.settings import (
    ApiSettings,
    DatabaseSettings,
    KafkaSettings,
    RetrySettings,
    Settings,
)
from synapseops.signatures import sign_stripe
from tests.integration.databases import fresh_database
from tests.integration.groups import start_groups_at_end
from tests.integration.integration.world import (
    MAPPING,
    erp_orders,
    make_flow,
    order_body,
    post,
    runs_of,
    shopify_sign,
    world_context,
)
from tests.integration.payments.factory import PaymentFactory
from tests.integration.worker_process import WorkerProcess
from topics.admin import apply_topics
from topics.registry import INTEGRATION_DELIVERY, PAYMENT_SETTLEMENT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TIERS = "2s,4s,8s"  # tries at ~0, 2, 6, 14 s: a 10 s outage ends before the last one
OUTAGE_S = 10.0
THRESHOLD = 100_000
TOKEN = f"t-{uuid.uuid4().hex}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORLD_AUTH = {"Authorization": "Bearer t"}  # integration_world's API token
STRIPE_SECRET = f"whsec_{uuid.uuid4().hex}"


def wait_for(what: str, condition: Callable[[], Any], within_s: float) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def outage(sandbox_url: str, target: str) -> None:
    fault = {"target": target, "error_rate": 1.0, "status": 503}
    httpx.post(f"{sandbox_url}/_sandbox/faults", json=fault).raise_for_status()


def recover(sandbox_url: str) -> None:
    httpx.delete(f"{sandbox_url}/_sandbox/faults").raise_for_status()


def dead_letter_ids(engine: sqlalchemy.Engine, pipeline: str, key: bytes) -> list[int]:
    statement = select(dead_letters.c.id).where(
        dead_letters.c.pipeline == pipeline, dead_letters.c.key == key
    )
    with engine.connect() as conn:
        return list(conn.execute(statement).scalars())


def replay(api: str, ids: list[int], auth: dict[str, str] = AUTH) -> dict[str, Any]:
    response = httpx.post(
        f"{api}/api/v1/dead-letters/replay", json={"ids": ids}, headers=auth, timeout=30
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def worker_for(
    kafka_bootstrap: str, database: str, data_dir: Path, pipeline: str, **env: str
) -> WorkerProcess:
    group = f"t-cmd-{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    apply_topics(Settings(kafka=kafka, retry=RetrySettings(tiers=TIERS)))
    start_groups_at_end(kafka, group, TIERS)
    return WorkerProcess(
        kafka_bootstrap,
        database,
        data_dir,
        tiers=TIERS,
        group_id=group,
        extra_env={"SYNAPSEOPS_WORKER_PIPELINES": pipeline, **env},
    )


@pytest.fixture
def started() -> Iterator[Callable[[WorkerProcess], WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(worker: WorkerProcess) -> WorkerProcess:
        workers.append(worker)
        worker.start()
        worker.wait_healthy()
        return worker

    yield start
    for worker in workers:
        worker.stop()
        print(worker.log_tail(3000))


# ---- settlement approvals ----------------------------------------------------------------


@pytest.fixture(scope="module")
def payments(
    settings: Settings, kafka_bootstrap: str, database_url: str
) -> Iterator[dict[str, Any]]:
    with fresh_database(database_url, "t_payments") as url, SandboxServer() as sandbox:
        own = settings.model_copy(
            update={
                "kafka": KafkaSettings(bootstrap=kafka_bootstrap),
                "database": DatabaseSettings(url=SecretStr(url)),
                "api": ApiSettings(token=SecretStr(TOKEN)),
                "retry": RetrySettings(tiers=TIERS),
                "stripe": settings.stripe.model_copy(
                    update={"webhook_secret": SecretStr(STRIPE_SECRET)}
                ),
            }
        )
        engine = sqlalchemy.create_engine(url)
        with serving_in_thread(create_app(own)) as api:
            yield {"api": api, "engine": engine, "sandbox": sandbox, "url": url}
        engine.dispose()


@pytest.fixture
def payments_worker(
    payments: dict[str, Any],
    kafka_bootstrap: str,
    tmp_path: Path,
    started: Callable[[WorkerProcess], WorkerProcess],
) -> WorkerProcess:
    return started(
        worker_for(
            kafka_bootstrap,
            payments["url"],
            tmp_path,
            PAYMENT_SETTLEMENT,
            SYNAPSEOPS_PAYMENTS_FINANCE_URL=f"{payments['sandbox'].url}/finance",
            SYNAPSEOPS_PAYMENTS_APPROVAL_THRESHOLDS=f'{{"USD": {THRESHOLD}}}',
        )
    )


def settlement_row(payments: dict[str, Any], sid: str) -> dict[str, Any] | None:
    with payments["engine"].connect() as conn:
        row = conn.execute(select(settlements).where(settlements.c.settlement_id == sid)).first()
    return dict(row._mapping) if row is not None else None


def ledger(payments: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = httpx.get(f"{payments['sandbox'].url}/_sandbox/finance/ledger").json()["entries"]
    return [entry for entry in entries if entry["key"] == key]


def large_payment_waiting(payments: dict[str, Any]) -> PaymentFactory:
    """A large payment through the real Stripe ingress, waiting for a person."""
    payment = PaymentFactory(amount=THRESHOLD * 3)
    body = payment.succeeded().body
    response = httpx.post(
        f"{payments['api']}/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign_stripe(body, STRIPE_SECRET)},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    wait_for(
        "pending_approval",
        lambda: (
            (settlement_row(payments, payment.charge_settlement) or {}).get("state")
            == "pending_approval"
        ),
        30,
    )
    return payment


def approve(payments: dict[str, Any], payment: PaymentFactory) -> None:
    response = httpx.post(
        f"{payments['api']}/api/v1/settlements/{payment.charge_settlement}/approve",
        json={"reason": "checked with the customer"},
        headers=AUTH,
        timeout=20,
    )
    assert response.status_code == 202, response.text


def settled_once(payments: dict[str, Any], payment: PaymentFactory, within_s: float) -> None:
    sid = payment.charge_settlement
    row = wait_for(
        "settled",
        lambda: (r := settlement_row(payments, sid)) and r["state"] == "settled" and r,
        within_s,
    )
    (entry,) = ledger(payments, sid)
    assert row["finance_reference"] == entry["reference"]
    assert (row["approval_decision"], row["approved_by"]) == ("approve", "token:bootstrap")
    with payments["engine"].connect() as conn:
        statement = select(settlement_attempts.c.outcome, settlement_attempts.c.response_status)
        attempts = conn.execute(statement.where(settlement_attempts.c.settlement_id == sid)).all()
    assert ("retry", 503) in [tuple(a) for a in attempts]  # it did fail while finance was down
    assert [a for a in attempts if a[0] == "settled"] == [("settled", 201)]


def test_an_approval_during_a_finance_outage_settles_once_through_a_retry_tier(
    payments: dict[str, Any], payments_worker: WorkerProcess
) -> None:
    payment = large_payment_waiting(payments)
    outage(payments["sandbox"].url, "finance")
    approve(payments, payment)
    time.sleep(OUTAGE_S)
    recover(payments["sandbox"].url)
    settled_once(payments, payment, within_s=40)
    assert dead_letter_ids(payments["engine"], PAYMENT_SETTLEMENT, payment.pi.encode()) == []


def test_an_approval_dead_lettered_by_a_long_outage_settles_once_when_replayed(
    payments: dict[str, Any], payments_worker: WorkerProcess
) -> None:
    payment = large_payment_waiting(payments)
    outage(payments["sandbox"].url, "finance")
    approve(payments, payment)
    engine, key = payments["engine"], payment.pi.encode()
    ids = wait_for("the dead letter", lambda: dead_letter_ids(engine, PAYMENT_SETTLEMENT, key), 60)
    assert (settlement_row(payments, payment.charge_settlement) or {})["state"] == "pending"
    recover(payments["sandbox"].url)
    assert replay(payments["api"], ids)["replayed"] == 1
    settled_once(payments, payment, within_s=30)


# ---- integration re-runs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    # The API replays into the worker's tiers: both run with TIERS.
    tuned = settings.model_copy(update={"retry": RetrySettings(tiers=TIERS)})
    with world_context(tuned, database_url) as built:
        yield built


@pytest.fixture
def delivery_worker(
    world: dict[str, Any],
    kafka_bootstrap: str,
    tmp_path: Path,
    started: Callable[[WorkerProcess], WorkerProcess],
) -> WorkerProcess:
    url = world["settings"].database_url
    return started(
        worker_for(kafka_bootstrap, url, tmp_path, INTEGRATION_DELIVERY, **world["worker_env"])
    )


def a_dead_run(world: dict[str, Any], number: int) -> tuple[int, int]:
    """A Shopify order whose first delivery the ERP refused for good: (flow id, run id)."""
    flow_id = make_flow(world, "orders/create", json.loads(MAPPING.read_text()))
    connector, _ = world["connector_of"][flow_id]
    fault = {"target": "erp", "status": 422, "count": 1}
    httpx.post(f"{world['sandbox'].url}/_sandbox/faults", json=fault).raise_for_status()
    body = order_body(number)
    signed = {
        "X-Shopify-Hmac-Sha256": shopify_sign(body),
        "X-Shopify-Webhook-Id": f"wh-{uuid.uuid4().hex}",
    }
    response = post(world, connector, "orders/create", body, **signed)
    assert response.status_code == 202, response.text
    dead = wait_for(
        "the dead run", lambda: [r for r in runs_of(world, flow_id) if r["status"] == "dead"], 30
    )
    recover(world["sandbox"].url)
    return flow_id, int(dead[0]["id"])


def rerun(world: dict[str, Any], run_id: int) -> None:
    url = f"{world['api']}/api/v1/runs/{run_id}/rerun"
    response = httpx.post(url, headers=WORLD_AUTH, timeout=20)
    assert response.status_code == 202, response.text


def delivered_once(world: dict[str, Any], flow_id: int, number: int, within_s: float) -> None:
    wait_for(
        "a succeeded run",
        lambda: [r for r in runs_of(world, flow_id) if r["status"] == SUCCEEDED],
        within_s,
    )
    assert len(erp_orders(world, f"shopify-{number}")) == 1
    statuses = [r["status"] for r in runs_of(world, flow_id)]
    assert statuses.count(SUCCEEDED) == 1 and "failed" in statuses, statuses


def test_a_rerun_during_an_erp_outage_delivers_once_through_a_retry_tier(
    world: dict[str, Any], delivery_worker: WorkerProcess
) -> None:
    number = 7_000_000 + uuid.uuid4().int % 1_000_000
    flow_id, run_id = a_dead_run(world, number)
    outage(world["sandbox"].url, "erp")
    rerun(world, run_id)
    time.sleep(OUTAGE_S)
    recover(world["sandbox"].url)
    delivered_once(world, flow_id, number, within_s=40)


def test_a_rerun_dead_lettered_by_a_long_outage_delivers_once_when_replayed(
    world: dict[str, Any], delivery_worker: WorkerProcess
) -> None:
    number = 8_000_000 + uuid.uuid4().int % 1_000_000
    flow_id, run_id = a_dead_run(world, number)
    outage(world["sandbox"].url, "erp")
    rerun(world, run_id)
    engine, key = world["engine"], str(flow_id).encode()
    ids = wait_for(
        "the dead letter", lambda: dead_letter_ids(engine, INTEGRATION_DELIVERY, key), 60
    )
    recover(world["sandbox"].url)
    assert replay(world["api"], ids, WORLD_AUTH)["replayed"] == 1
    delivered_once(world, flow_id, number, within_s=30)
