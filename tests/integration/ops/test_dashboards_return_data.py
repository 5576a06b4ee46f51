"""Every panel of every dashboard returns data from a real Prometheus scraping a real stack.

After traffic of every service (settled payments, generic events, Shopify orders to the
ERP; a few finance and ERP failures that retry, some that die, one replay; a CRM pair synced
both ways, with HubSpot refusing for a while (a conflict held, 429s waited out, a feed read
failing, a record refused for good); OTLP logs sent twice, a polled GitHub source, the
market feed, a payload no logic takes, a canonical record the loader cannot decode), each target
``expr`` of ``deploy/grafana/dashboards/*.json`` is evaluated as an instant query. Dashboard
variables are substituted by each value Prometheus has for them (``label_values`` of their
definition) until one gives data. A query fails the test when Prometheus refuses it, or when
no value of its variables gives at least one sample that is a number (NaN, the quantile of
an empty window, counts as nothing).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from synapseops.settings import PROJECT_ROOT
from tests.integration.ops.ops_stack import OpsStack
from tests.integration.ops.prometheus_server import PrometheusError, PrometheusServer
from tests.integration.ops.service_traffic import (
    HUBSPOT_FEED,
    HUBSPOT_RECORDS,
    AggregationTraffic,
    CrmTraffic,
)
from tests.integration.ops.traffic import StackTraffic, wait_until

pytestmark = pytest.mark.integration

DASHBOARDS = PROJECT_ROOT / "deploy" / "grafana" / "dashboards"
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
REGEX_CHARS = re.compile(r"([\\^$.|?*+()\[\]{}])")
DEFINITION = re.compile(r"label_values\((?P<metric>[^,]+),\s*(?P<label>\w+)\)")


@pytest.fixture(scope="module")
def after_traffic(ops_stack: OpsStack, prometheus: PrometheusServer) -> Iterator[PrometheusServer]:
    traffic = StackTraffic(ops_stack)
    try:
        healthy = traffic.payments(6)
        events = traffic.generic(12)
        orders = traffic.orders(4)
        traffic.wait_settled(healthy)
        traffic.wait_stored(events)
        traffic.wait_delivered(orders)
        # Two finance 503s: retried by a tier, then settled.
        traffic.set_fault("finance", count=2, status=503)
        retried = traffic.payments(2)
        traffic.wait_settled(retried)
        # Two finance 422s (a request finance never accepts): dead letters at once.
        traffic.set_fault("finance", count=2, status=422)
        dead_payments = traffic.payments(2)
        # An ERP 503 (retried) and an ERP 422 (dead) for two more orders.
        traffic.set_fault("erp", count=1, status=503)
        retried_order = traffic.orders(1)
        traffic.wait_fault_spent("erp")
        traffic.wait_delivered(retried_order)
        traffic.set_fault("erp", count=1, status=422)
        traffic.orders(1)
        traffic.wait_fault_spent("erp")
        dead = _wait_dead(traffic, {"payment-settlement": 2, "integration-delivery": 1})
        # One of the two dead payments replayed (finance takes it now): settled.
        [first, *_] = dead["payment-settlement"]
        replay = traffic.api("POST", "/api/v1/dead-letters/replay", json={"ids": [first]})
        assert replay["replayed"] == 1
        wait_until(
            lambda: len(
                [p for p in dead_payments if p in _settled(traffic, dead_payments)]
            ) == 1,
            "the replayed payment settled",
        )  # fmt: skip
        crm_and_aggregation(traffic, prometheus)
        bad = httpx.post(
            f"{ops_stack.api_url}/webhooks/stripe",
            content=b"{}",
            headers={"Stripe-Signature": "t=1,v1=00"},
        )
        assert bad.status_code == 401
        time.sleep(5)  # a few scrapes after the last change: every rate has its samples
        yield prometheus
    finally:
        traffic.clear_faults()
        traffic.close()


def crm_and_aggregation(traffic: StackTraffic, prometheus: PrometheusServer) -> None:
    crm, aggregation = CrmTraffic(traffic), AggregationTraffic(traffic)
    crm.ensure_pair()
    crm.wait_synced({crm.create("salesforce"), crm.create("hubspot")})
    crm.conflict()  # HubSpot's records refuse (503) a while: failed changes, retries, conflict
    traffic.set_fault("hubspot", count=2, status=429, retry_after_s=1, path_prefix=HUBSPOT_RECORDS)
    crm.wait_synced({crm.create("salesforce")})  # the 429s waited out inside the calls
    traffic.wait_fault_spent("hubspot")
    traffic.set_fault("hubspot", count=1, status=503, path_prefix=HUBSPOT_FEED)
    traffic.wait_fault_spent("hubspot")  # one feed read failed
    traffic.set_fault("hubspot", count=1, status=422, path_prefix=HUBSPOT_RECORDS)
    crm.create("salesforce")  # its pair refused for good: a dead letter
    traffic.wait_fault_spent("hubspot")
    export = aggregation.logs_export(5)
    aggregation.send_logs(export)
    aggregation.send_logs(export)  # the same records again: duplicates
    aggregation.poll_github(3)
    aggregation.poison_payload()
    aggregation.undecodable_canonical()
    _wait_dead(traffic, {"crm-sync": 1, "aggregation-transform": 1})
    for expr in (
        'synapseops_loader_rows_total{outcome="undecodable"}',
        'synapseops_aggregation_events_total{source="demo-github",outcome="published"}',
        'synapseops_aggregation_events_total{source="ops-logs",outcome="duplicate"}',
    ):
        wait_until(partial(_has_data, prometheus, expr), f"Prometheus has {expr}")


def _has_data(prometheus: PrometheusServer, expr: str) -> bool:
    return has_numbers(prometheus.query(expr))


def _settled(traffic: StackTraffic, payments: list[str]) -> set[str]:
    rows = traffic.demo.settlements(set(payments))
    return {row["payment_id"] for row in rows if row["state"] == "settled"}


def _wait_dead(traffic: StackTraffic, wanted: dict[str, int]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}

    def enough() -> bool:
        for pipeline in wanted:
            rows = traffic.api("GET", "/api/v1/dead-letters", params={"pipeline": pipeline})
            found[pipeline] = [row["id"] for row in rows["items"] if row["status"] == "dead"]
        return all(len(found[p]) >= n for p, n in wanted.items())

    wait_until(enough, f"dead letters {wanted}")
    return found


def dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, json.loads(path.read_text())) for path in sorted(DASHBOARDS.glob("*.json"))]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield from panels(panel) if panel.get("type") == "row" and panel.get("panels") else ()
        if panel.get("type") != "row":
            yield panel


def variable_values(
    prometheus: PrometheusServer, dashboard: dict[str, Any]
) -> dict[str, list[str]]:
    values = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        match = DEFINITION.fullmatch(variable["definition"].strip())
        assert match, f"{variable['name']}: only label_values(metric, label) is evaluated"
        found = prometheus.label_values(match["label"], match["metric"].strip())
        assert found, f"variable {variable['name']} has no value in the data"
        values[variable["name"]] = found
    return values


def regex_value(value: str) -> str:
    """``value`` as Grafana puts it into a PromQL regex matcher: regex characters escaped,
    the escape doubled for the string literal (``a.b`` → ``a\\\\.b``)."""
    return REGEX_CHARS.sub(r"\\\\\1", value)


def has_numbers(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


def evaluate(prometheus: PrometheusServer, expr: str, values: dict[str, list[str]]) -> str | None:
    """Why ``expr`` fails, or None when some value of its variables gives data."""
    used = sorted({a or b for a, b in VARIABLE.findall(expr)})
    unknown = [name for name in used if name not in values]
    if unknown:
        return f"uses undefined variables {unknown}"
    for combination in itertools.product(*(values[name] for name in used)):
        text = expr
        for name, value in zip(used, combination, strict=True):
            escaped = regex_value(value)
            text = re.sub(rf"\$\{{{name}\}}|\${name}\b", lambda _, e=escaped: e, text)
        try:
            if has_numbers(prometheus.query(text)):
                return None
        except PrometheusError as exc:
            return f"refused: {exc}"
    return "returns nothing" + (f" for any of {used}" if used else "")


def test_every_panel_returns_data(after_traffic: PrometheusServer) -> None:
    failures, evaluated, panel_count = [], 0, 0
    for name, dashboard in dashboards():
        values = variable_values(after_traffic, dashboard)
        for panel in panels(dashboard):
            panel_count += 1
            for target in panel["targets"]:
                evaluated += 1
                why = evaluate(after_traffic, target["expr"], values)
                if why is not None:
                    failures.append(f"{name} / {panel['title']} / {target['expr']}: {why}")
    print(f"\n{len(dashboards())} dashboards, {panel_count} panels, {evaluated} queries evaluated")
    assert evaluated and failures == [], "\n".join(failures)
