"""The important alerts fire on a real stack under the real failure each one is meant for.

Real worker, API, warehouse loader and sandbox (subprocesses), the session's broker and
PostgreSQL, a real
Prometheus scraping them every second with the live copy of ``deploy/prometheus/rules`` (every
``for:`` zero; why that is the right copy: :mod:`tests.integration.ops.live_rules`). The
tests run in order on one stack; each leaves it healthy again:

1. healthy traffic of every service (payments, generic events, Shopify orders, a CRM pair
   synced both ways, OTLP logs, the market feed) fires nothing;
2. finance answers 503 to every call → settlements go through the tiers and die:
   dead-letter depth and oldest age, finance calls failing, settlement failure rate; a
   replay after finance is back settles them once each and the depth alert clears;
3. a large payment whose approval nobody answers: approvals waiting too long; answered in
   the inbox, the alert clears and the settlement is booked once (it runs before 4, which
   deletes and re-creates the triggers topic this needs: after 4 it failed in CI);
4. the notification-trigger topic deleted → the dead-letter store cannot publish a dead
   letter's trigger and dies, again after each restart: a supervised task down;
5. an API process whose Kafka is unreachable answers webhooks 503: ingress 5xx, and its
   consumer-lag reading fails;
6. the worker stopped while events keep arriving: consumer lag, and a process down;
7. HubSpot answers 503 to the CRM sync's reads and writes: CRM changes failing; once it is
   back, a replay syncs the person once;
8. OTLP logs an hour late: a source's ingestion latency;
9. a record on the canonical topic that does not decode: the loader's undecodable rows;
   then the loader stopped while logs keep arriving: no loader running, its lag growing;
   restarted, it loads every one of them exactly once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy
from confluent_kafka.admin import AdminClient
from sqlalchemy import func, select

from sinks.aggregation.tables import events as warehouse_events
from sinks.event_log.tables import inbound_events
from tests.integration.ops.live_rules import alert_rules
from tests.integration.ops.ops_stack import OpsStack, ServedProcess
from tests.integration.ops.prometheus_server import PrometheusServer
from tests.integration.ops.service_traffic import (
    HUBSPOT_RECORDS,
    LOGS_SOURCE,
    AggregationTraffic,
    CrmTraffic,
)
from tests.integration.ops.traffic import StackTraffic, wait_until
from tests.integration.worker_process import free_port
from topics.admin import apply_topics
from topics.registry import NOTIFICATION_TRIGGERS

pytestmark = pytest.mark.integration

FIRES_WITHIN_S = 120.0
SETTLEMENT = "payment-settlement"


@pytest.fixture(scope="module")
def traffic(ops_stack: OpsStack) -> Iterator[StackTraffic]:
    sender = StackTraffic(ops_stack)
    yield sender
    sender.close()


@pytest.fixture(scope="module")
def crm(traffic: StackTraffic) -> CrmTraffic:
    return CrmTraffic(traffic)


@pytest.fixture(scope="module")
def logs(traffic: StackTraffic) -> AggregationTraffic:
    return AggregationTraffic(traffic)


def firing(prometheus: PrometheusServer, alert: str, **labels: str) -> list[dict[str, Any]]:
    return [
        found
        for found in prometheus.alerts()
        if found["state"] == "firing"
        and found["labels"]["alertname"] == alert
        and all(found["labels"].get(name) == value for name, value in labels.items())
    ]


def wait_firing(
    prometheus: PrometheusServer, alert: str, within_s: float = FIRES_WITHIN_S, **labels: str
) -> dict[str, Any]:
    """The firing alert ``alert`` with ``labels``, once Prometheus has it."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = firing(prometheus, alert, **labels)
        if found:
            return found[0]
        time.sleep(0.5)
    expr = alert_rules()[alert]["expr"]
    pytest.fail(
        f"{alert} {labels} not firing within {within_s:g}s; its expression now gives "
        f"{prometheus.query(expr)}; alerts: {[a['labels'] for a in prometheus.alerts()]}"
    )


def test_the_live_copy_holds_every_rule_of_deploy(prometheus: PrometheusServer) -> None:
    assert prometheus.rule_names() == set(alert_rules())


def test_healthy_traffic_fires_nothing(
    prometheus: PrometheusServer, traffic: StackTraffic, crm: CrmTraffic, logs: AggregationTraffic
) -> None:
    payments = traffic.payments(4)
    events = traffic.generic(12)
    orders = traffic.orders(3)
    crm.ensure_pair()
    people = {crm.create("salesforce"), crm.create("hubspot")}
    logs.send_logs(logs.logs_export(5))
    traffic.wait_settled(payments)
    traffic.wait_stored(events)
    traffic.wait_delivered(orders)
    crm.wait_synced(people)
    time.sleep(5)  # five evaluations of every rule over what was scraped
    assert [a["labels"] for a in prometheus.alerts() if a["state"] == "firing"] == []


def test_dead_letters_and_failing_settlements(
    prometheus: PrometheusServer, traffic: StackTraffic
) -> None:
    traffic.set_fault("finance", error_rate=1.0, status=503)
    try:
        payments = traffic.payments(4)
        waiting = wait_firing(prometheus, "DeadLettersWaiting", pipeline=SETTLEMENT)
        wait_until(
            lambda: firing(prometheus, "DeadLettersWaiting", pipeline=SETTLEMENT)[0]["annotations"]
            ["summary"] == f"{SETTLEMENT} has 4 dead letters waiting for a person",
            "the depth alert counting the four",
        )  # fmt: skip
        assert waiting["labels"]["severity"] == "warning"
        wait_firing(prometheus, "DeadLetterOlderThanADay", pipeline=SETTLEMENT)
        wait_firing(prometheus, "FinanceCallsFailing")
        failing = wait_firing(prometheus, "SettlementFailureRate")
        assert failing["annotations"]["summary"].endswith(
            "of settlement tries fail (retry, dead or refused)"
        )
        dead = traffic.api("GET", "/api/v1/dead-letters", params={"pipeline": SETTLEMENT})
        assert len(dead["items"]) == 4
    finally:
        traffic.clear_faults()
    # Finance is back: the runbook's replay settles each once and the depth alert clears.
    replay = traffic.api("POST", "/api/v1/dead-letters/replay", json={"pipeline": SETTLEMENT})
    assert (replay["matched"], replay["replayed"]) == (4, 4)
    traffic.wait_settled(payments)
    wait_until(
        lambda: not firing(prometheus, "DeadLettersWaiting", pipeline=SETTLEMENT),
        "DeadLettersWaiting clears once the replay has settled them",
    )
    ledger = httpx.get(f"{traffic.stack.sandbox_url}/_sandbox/finance/ledger").json()["entries"]
    keys = [entry["key"] for entry in ledger]
    assert sorted(k for k in keys if any(p in k for p in payments)) == sorted(
        f"stl_{p}_charge" for p in payments
    )


def test_an_approval_nobody_answers(prometheus: PrometheusServer, traffic: StackTraffic) -> None:
    suffix = uuid.uuid4().hex[:6]
    channel = traffic.api(
        "POST",
        "/api/v1/notification-channels",
        json={
            "name": f"approvals-{suffix}",
            "kind": "slack_bot",
            "config": {"channel": "#approvals"},
            "secret": "xoxb-ops-live-test",
        },
    )
    workflow = traffic.api(
        "POST",
        "/api/v1/notification-workflows",
        json={
            "name": f"large payments {suffix}",
            "trigger_kind": "large_payment",
            "spec": {"steps": [{"type": "wait_for_approval", "channel": channel["name"]}]},
        },
    )
    try:
        (payment,) = traffic.payments(1, amount=2_500_000)  # over the USD approval threshold
        waiting = wait_firing(prometheus, "ApprovalsWaitingTooLong")
        assert waiting["labels"]["severity"] == "warning"
        assert waiting["annotations"]["summary"].startswith("an approval has waited ")
        pending = traffic.api("GET", "/api/v1/approvals", params={"state": "pending"})["items"]
        (mine,) = [item for item in pending if payment in json.dumps(item)]
        traffic.api("POST", f"/api/v1/approvals/{mine['id']}/approve", json={"reason": "ops test"})
        traffic.wait_settled([payment])
        wait_until(
            lambda: not firing(prometheus, "ApprovalsWaitingTooLong"),
            "ApprovalsWaitingTooLong clears once the approval is answered",
        )
    finally:
        traffic.api("POST", f"/api/v1/notification-workflows/{workflow['id']}/disable")
    ledger = httpx.get(f"{traffic.stack.sandbox_url}/_sandbox/finance/ledger").json()["entries"]
    assert [entry["key"] for entry in ledger if payment in entry["key"]] == [
        f"stl_{payment}_charge"
    ]


def test_a_supervised_task_down(
    prometheus: PrometheusServer, traffic: StackTraffic, ops_stack: OpsStack
) -> None:
    admin = AdminClient({"bootstrap.servers": ops_stack.kafka.bootstrap})
    admin.delete_topics([NOTIFICATION_TRIGGERS.name])[NOTIFICATION_TRIGGERS.name].result(30)
    worker = f"127.0.0.1:{ops_stack.worker.port}"
    try:
        # One fatal answer from finance: a dead letter at once, whose trigger has no topic.
        traffic.set_fault("finance", count=1, status=422)
        traffic.payments(1)
        down = wait_firing(prometheus, "WorkerTaskDown", instance=worker)
        assert down["annotations"]["summary"] == f"{worker} has 1 background task(s) down"
        wait_until(
            lambda: "dead-letter-store" in httpx.get(f"http://{worker}/health").json()["down"],
            "the worker's /health naming the dead-letter store",
        )
        wait_firing(prometheus, "WorkerTaskRestarting", instance=worker, task="dead-letter-store")
    finally:
        traffic.clear_faults()
        _recreate(ops_stack)
    # The topic is back: the restarted store publishes the trigger and stays up.
    wait_until(
        lambda: httpx.get(f"http://{worker}/health", timeout=5).status_code == 200,
        "the worker healthy again once the trigger topic exists",
    )
    wait_until(lambda: not firing(prometheus, "WorkerTaskDown"), "WorkerTaskDown clears")


def _recreate(stack: OpsStack) -> None:
    # Deletion finishes in the background; creating the topic again fails until it has.
    deadline = time.monotonic() + 60
    while True:
        try:
            apply_topics(stack.settings)
            admin = AdminClient({"bootstrap.servers": stack.kafka.bootstrap})
            if NOTIFICATION_TRIGGERS.name in admin.list_topics(timeout=10).topics:
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


def test_ingress_5xx_when_the_api_cannot_reach_kafka(
    prometheus: PrometheusServer, traffic: StackTraffic, ops_stack: OpsStack
) -> None:
    unreachable = f"127.0.0.1:{free_port()}"
    port = free_port()
    env = ops_stack.env | {
        "SYNAPSEOPS_KAFKA_BOOTSTRAP": unreachable,
        "SYNAPSEOPS_API_PORT": str(port),
    }
    # Its /health is 503 (no Kafka): it is up once /metrics answers.
    cut_off = ServedProcess("api", port, env, ops_stack.data_dir / "api-cut-off.log", "/metrics")
    cut_off.start()
    try:
        cut_off.wait_healthy()
        prometheus.set_targets("api", [ops_stack.api.address, cut_off.address])
        wait_until(
            lambda: {t["labels"]["instance"] for t in prometheus.targets() if t["health"] == "up"}
            >= {cut_off.address},
            "Prometheus scraping the second API",
        )  # fmt: skip
        statuses = traffic.stripe_answers(f"http://{cut_off.address}", 3)
        assert statuses == [503, 503, 503]
        alert = wait_firing(prometheus, "IngressAnswering5xx", source="stripe")
        assert alert["labels"]["severity"] == "critical"
        wait_firing(prometheus, "KafkaLagUnreadable", instance=cut_off.address)
    finally:
        prometheus.set_targets("api", [ops_stack.api.address])
        cut_off.stop()


def test_consumer_lag_and_a_stopped_worker(
    prometheus: PrometheusServer, traffic: StackTraffic, ops_stack: OpsStack
) -> None:
    ops_stack.worker.stop()
    try:
        events = traffic.generic(1200, threads=16)
        lag = wait_firing(
            prometheus, "ConsumerLagHigh", group=ops_stack.group, topic="synapseops.events.inbound"
        )
        assert lag["annotations"]["summary"].startswith(f"{ops_stack.group} is ")
        wait_firing(prometheus, "SynapseOpsProcessDown", job="synapseops-worker")
    finally:
        ops_stack.restart_worker()
    # Restarted, the worker works the backlog off: the broker's lag of its group goes to 0.
    expr = f'sum(synapseops_kafka_consumer_lag{{group="{ops_stack.group}"}})'
    started = time.monotonic()
    wait_until(lambda: prometheus.query(expr)[0]["value"][1] == "0", "the lag back to zero", 300)
    print(f"{len(events)} events worked off in {time.monotonic() - started:.0f}s")
    engine = sqlalchemy.create_engine(ops_stack.database_url)
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).where(inbound_events.c.event_id.in_(events))
        ).scalar_one()
    engine.dispose()
    assert stored == len(events)


def test_crm_changes_failing_while_hubspot_answers_5xx(
    prometheus: PrometheusServer, traffic: StackTraffic, crm: CrmTraffic
) -> None:
    mapping = str(crm.ensure_pair())
    traffic.set_fault("hubspot", error_rate=1.0, status=503, path_prefix=HUBSPOT_RECORDS)
    try:
        email = crm.create("salesforce")
        failing = wait_firing(
            prometheus, "CrmSyncFailing", mapping=mapping, direction="salesforce_to_hubspot"
        )
        assert failing["annotations"]["summary"].startswith(
            f"mapping {mapping} salesforce_to_hubspot: "
        )
    finally:
        traffic.clear_faults()
    # HubSpot is back: whatever the tiers did not finish is a dead letter, which a replay
    # syncs; the person is on HubSpot once.
    if email not in crm.records("hubspot"):
        wait_until(
            lambda: email in crm.records("hubspot") or _dead(traffic, "crm-sync") > 0,
            "the change synced by a tier, or dead-lettered",
        )
        if _dead(traffic, "crm-sync"):
            traffic.api("POST", "/api/v1/dead-letters/replay", json={"pipeline": "crm-sync"})
    crm.wait_synced({email})
    contacts = traffic.http.get(
        f"{traffic.stack.sandbox_url}/_sandbox/hubspot/records",
        params={"object_type": "contacts"},
    ).json()["records"]
    assert len([r for r in contacts if r["properties"].get("email") == email]) == 1


def _dead(traffic: StackTraffic, pipeline: str) -> int:
    rows = traffic.api("GET", "/api/v1/dead-letters", params={"pipeline": pipeline})["items"]
    return sum(1 for row in rows if row["status"] == "dead")


def test_logs_arriving_an_hour_late(prometheus: PrometheusServer, logs: AggregationTraffic) -> None:
    for _ in range(3):
        logs.send_logs(logs.logs_export(5, late_s=3600))
        time.sleep(1.5)  # a few scrapes apart: the latency buckets have a rate
    late = wait_firing(prometheus, "IngestionLatencyHigh", source=LOGS_SOURCE)
    assert late["annotations"]["summary"].startswith(f"{LOGS_SOURCE}: events arrive ")


def test_the_loader_skipping_a_record_then_stopped_while_logs_arrive(
    prometheus: PrometheusServer, logs: AggregationTraffic, ops_stack: OpsStack
) -> None:
    loader = ops_stack.loader.address
    logs.undecodable_canonical()
    wait_firing(prometheus, "LoaderUndecodableRows", instance=loader)
    lag = f"sum({_loader_lag(ops_stack)})"
    wait_until(lambda: _value(prometheus, lag) == 0, "the loader caught up")
    loaded_before = _loaded(ops_stack)
    ops_stack.loader.stop()
    sent = 0
    try:
        wait_firing(prometheus, "NoLoaderRunning")
        wait_firing(prometheus, "SynapseOpsProcessDown", job="synapseops-loader")
        for _ in range(3):  # 1,200 log records, three exports under the body cap
            logs.send_logs(logs.logs_export(400))
            sent += 400
        growing = wait_firing(prometheus, "LoaderLagGrowing", group=ops_stack.loader_group)
        assert growing["annotations"]["summary"].startswith(
            f"loader group {ops_stack.loader_group} is "
        )
    finally:
        ops_stack.loader.start()
        ops_stack.loader.wait_healthy()
    # Restarted, it resumes from its stored offsets: every record loaded, none twice.
    wait_until(lambda: _value(prometheus, lag) == 0, "the loader's lag back to zero", 180)
    wait_until(lambda: _loaded(ops_stack) >= loaded_before + sent, "the backlog loaded")
    assert _loaded(ops_stack) == loaded_before + sent
    wait_until(lambda: not firing(prometheus, "NoLoaderRunning"), "NoLoaderRunning clears")


def _loader_lag(stack: OpsStack) -> str:
    return f'synapseops_kafka_consumer_lag{{group="{stack.loader_group}"}}'


def _value(prometheus: PrometheusServer, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def _loaded(stack: OpsStack) -> int:
    engine = sqlalchemy.create_engine(stack.database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(warehouse_events.c.source == LOGS_SOURCE)
                ).scalar_one()
            )
    finally:
        engine.dispose()
