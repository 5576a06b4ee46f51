"""Every panel of every dashboard returns data from a real Prometheus scraping a real stack.

After traffic of the three services (settled payments, generic events, Shopify orders to
the ERP; a few finance and ERP failures that retry, some that die, one replay), each target
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
from typing import Any

import httpx
import pytest

from synapseops.settings import PROJECT_ROOT
from tests.integration.ops.ops_stack import OpsStack
from tests.integration.ops.prometheus_server import PrometheusError, PrometheusServer
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
