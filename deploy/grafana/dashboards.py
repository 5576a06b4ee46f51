"""SynapseOps's Grafana dashboards, as code: one platform dashboard and one per service.

``python deploy/grafana/dashboards.py`` writes ``deploy/grafana/dashboards/<uid>.json``, the
files Grafana provisions (``deploy/grafana/provisioning``). The unit tests fail when those
files differ from what this writes, and the ops stack test evaluates every panel's PromQL
against a real Prometheus scraping a real stack (``tests/integration/ops``): a panel whose
query errors or returns nothing fails it.

A panel is one line: ``panel(title, q(expr, legend), ..., unit=...)``. A dashboard variable
is a :class:`Variable` over one label of one metric, used in expressions as ``=~"$name"``
(multi-value, "All" matches everything). A new service adds its own :class:`Dashboard` to
:data:`DASHBOARDS`; how to read each one is in docs/runbook.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
WIDTH, HEIGHT = 12, 8  # two panels side by side on Grafana's 24-column grid


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    metric: str
    label: str


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = field(default=())


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def panel(title: str, *queries: Query, unit: str = "short", kind: str = "timeseries") -> Panel:
    return Panel(title, queries, unit, kind)


def row(title: str, *panels: Panel) -> Row:
    return Row(title, panels)


def quantiles(metric: str, by: str, selector: str = "", window: str = "5m") -> tuple[Query, ...]:
    """p50 and p99 of a histogram, by ``by``."""
    return tuple(
        q(
            f"histogram_quantile({p}, sum by (le, {by}) "
            f"(rate({metric}_bucket{selector}[{window}])))",
            f"p{int(p * 100)} {{{{{by}}}}}",
        )
        for p in (0.5, 0.99)
    )


def failure_ratio(pipeline: str) -> str:
    """The share of a pipeline's tries that failed (its alert's expression, no threshold)."""
    tries = f'synapseops_road_records_total{{pipeline="{pipeline}"'
    return f'sum(rate({tries},outcome=~"retry|dead|rejected"}}[10m])) / sum(rate({tries}}}[10m]))'


def road_row(pipeline: str, failing: str, *extra: Panel, retries: bool = True) -> Row:
    """One service pipeline on the road: its tries, failure rate, processing time, retries
    and dead letters (every service dashboard has this row; ``failing`` names its tries).
    ``retries=False`` for a pipeline whose handler is pure: only the platform fails it
    retryably, which the platform dashboard's retries panel shows."""
    only = f'{{pipeline="{pipeline}"}}'
    by_tier = panel(
        "Retries by tier",
        q(f"sum by (tier) (rate(synapseops_road_retries_total{only}[5m]))", "tier {{tier}}"),
        unit="ops",
    )
    return row(
        f"{pipeline} on the road",
        panel("Tries by outcome",
              q(f"sum by (outcome) (rate(synapseops_road_records_total{only}[5m]))", "{{outcome}}"),
              unit="ops"),
        panel(f"{failing} failure rate (tries that retried, died or were refused)",
              q(failure_ratio(pipeline), "failing"), unit="percentunit"),
        panel("Processing time p50 / p99",
              *quantiles("synapseops_road_processing_seconds", "pipeline", only), unit="s"),
        *((by_tier,) if retries else ()),
        panel("Dead letters waiting / oldest age (s)",
              q(f"max(synapseops_dead_letters_depth{only})", "waiting"),
              q(f"max(synapseops_dead_letters_oldest_age_seconds{only})", "oldest (s)")),
        *extra,
    )  # fmt: skip


PIPELINE = '{pipeline=~"$pipeline"}'
TRIES = "synapseops_road_records_total"
INGRESS = "synapseops_ingress_requests_total"
GROUP = '{group=~"$group"}'

PLATFORM = Dashboard(
    uid="synapseops-platform",
    title="SynapseOps platform",
    description="Every process, the reliability road of every pipeline, ingress, the Kafka "
    "cluster and consumer lag (read from the broker by the API).",
    variables=(
        Variable("pipeline", "synapseops_road_records_total", "pipeline"),
        Variable("group", "synapseops_kafka_consumer_lag", "group"),
    ),
    rows=(
        row(
            "Processes",
            panel("Processes answering /metrics (1 up, 0 down)",
                  q('up{job=~"synapseops-.+"}', "{{job}} {{instance}}"), kind="stat"),
            panel("Supervised tasks up (1) or down (0)",
                  q("min by (task) (synapseops_task_up)", "{{task}}")),
            panel("Supervised tasks down, by worker",
                  q("max by (instance) (synapseops_tasks_down)", "{{instance}}")),
            panel("Task restarts (15 min)",
                  q("sum by (task) (increase(synapseops_task_restarts_total[15m]))", "{{task}}")),
        ),
        row(
            "Reliability road",
            panel("Tries by pipeline and outcome",
                  q(f"sum by (pipeline, outcome) (rate({TRIES}{PIPELINE}[5m]))",
                    "{{pipeline}} {{outcome}}"), unit="ops"),
            panel("Processing time p50 / p99",
                  *quantiles("synapseops_road_processing_seconds", "pipeline", PIPELINE), unit="s"),
            panel("Retries by tier",
                  q(f"sum by (pipeline, tier) (rate(synapseops_road_retries_total{PIPELINE}[5m]))",
                    "{{pipeline}} tier {{tier}}"), unit="ops"),
            panel("Tier hold lag p99 (start minus due)",
                  q("histogram_quantile(0.99, sum by (le, pipeline) (rate("
                    f"synapseops_road_tier_hold_lag_seconds_bucket{PIPELINE}[10m])))",
                    "{{pipeline}}"), unit="s"),
            panel("Dead letters waiting",
                  q(f"max by (pipeline) (synapseops_dead_letters_depth{PIPELINE})",
                    "{{pipeline}}")),
            panel("Oldest dead letter waiting",
                  q(f"max by (pipeline) (synapseops_dead_letters_oldest_age_seconds{PIPELINE})",
                    "{{pipeline}}"), unit="s"),
            panel("Dead letters routed, by error class",
                  q("sum by (pipeline, error_class) (rate("
                    f"synapseops_road_dead_letters_routed_total{PIPELINE}[15m]))",
                    "{{pipeline}} {{error_class}}"), unit="ops"),
            panel("Replayed records",
                  q("sum by (pipeline) (increase("
                    f"synapseops_replayed_records_total{PIPELINE}[1h]))",
                    "{{pipeline}}")),
        ),
        row(
            "Webhook ingress",
            panel("Requests by source and outcome",
                  q("sum by (source, outcome) (rate(synapseops_ingress_requests_total[5m]))",
                    "{{source}} {{outcome}}"), unit="reqps"),
            panel("Latency p99 (until Kafka acks=all)",
                  q("histogram_quantile(0.99, sum by (le, source) "
                    "(rate(synapseops_ingress_latency_seconds_bucket[5m])))", "{{source}}"),
                  unit="s"),
            panel("Answered 5xx (senders retry)",
                  q(f'sum by (source, outcome) (rate({INGRESS}'
                    '{outcome=~"unavailable|overloaded"}[5m]))',
                    "{{source}} {{outcome}}"), unit="reqps"),
            panel("Held against the overload bounds",
                  q("max by (instance) (synapseops_ingress_in_flight "
                    "/ synapseops_ingress_in_flight_limit)", "{{instance}} requests"),
                  q("max by (instance) (synapseops_ingress_pending_bytes "
                    "/ synapseops_ingress_pending_bytes_limit)", "{{instance}} bytes"),
                  unit="percentunit"),
            panel("API answers by route and status",
                  q("sum by (route, status) (rate(synapseops_http_requests_total[5m]))",
                    "{{route}} {{status}}"), unit="reqps"),
            panel("Accepted bytes",
                  q("sum by (source) (rate(synapseops_ingress_bytes_total[5m]))", "{{source}}"),
                  unit="Bps"),
        ),
        row(
            "Kafka",
            panel("Consumer lag by group and topic",
                  q(f"sum by (group, topic) (synapseops_kafka_consumer_lag{GROUP})",
                    "{{group}} {{topic}}")),
            panel("Consumer lag by partition",
                  q(f"synapseops_kafka_consumer_lag{GROUP}", "{{group}} {{topic}}[{{partition}}]")),
            panel("Committed records per second, by group and topic",
                  q("sum by (group, topic) (rate("
                    f"synapseops_kafka_consumer_committed_offset{GROUP}[5m]))",
                    "{{group}} {{topic}}"), unit="ops"),
            panel("Brokers, under-replicated and offline partitions",
                  q("max(synapseops_kafka_brokers)", "brokers"),
                  q("max(synapseops_kafka_partitions_under_replicated)", "under-replicated"),
                  q("max(synapseops_kafka_partitions_offline)", "offline")),
            panel("Lag reading (1 ok) and its duration",
                  q("min by (instance) (synapseops_kafka_lag_read_ok)", "ok {{instance}}"),
                  q("max by (instance) (synapseops_kafka_lag_read_seconds)", "s {{instance}}")),
        ),
        row(
            "Simulated outside systems (sandbox: dev and tests)",
            panel("Answers by target and status",
                  q("sum by (target, status) (rate(synapseops_sandbox_requests_total[5m]))",
                    "{{target}} {{status}}"), unit="reqps"),
            panel("Answer time p99 by target",
                  q("histogram_quantile(0.99, sum by (le, target) "
                    "(rate(synapseops_sandbox_request_seconds_bucket[5m])))", "{{target}}"),
                  unit="s"),
        ),
    ),
)  # fmt: skip

CURRENCY = '{currency=~"$currency"}'

PAYMENTS = Dashboard(
    uid="synapseops-payments",
    title="SynapseOps payments",
    description="The Payment Gateway: Stripe ingress, settlements, the finance ledger's "
    "answers, approvals, and the payment-settlement pipeline's road.",
    variables=(Variable("currency", "synapseops_payments_settlements_total", "currency"),),
    rows=(
        row(
            "Settlements",
            panel("Settlements entering a state, by state and currency",
                  q("sum by (state, currency) (rate("
                    f"synapseops_payments_settlements_total{CURRENCY}[5m]))",
                    "{{state}} {{currency}}"), unit="ops"),
            panel("Settled amount by currency (minor units per second)",
                  q("sum by (currency) (rate("
                    f"synapseops_payments_settled_amount_minor_total{CURRENCY}[5m]))",
                    "{{currency}}")),
            panel("Webhook to ledger entry, p50 / p99",
                  *quantiles("synapseops_payments_settlement_latency_seconds", "path"), unit="s"),
            panel("Large payments sent for approval (1 h)",
                  q("sum(increase(synapseops_payments_large_payment_triggers_total[1h]))",
                    "triggers")),
        ),
        row(
            "Finance ledger",
            panel("Finance calls by outcome and status",
                  q("sum by (outcome, status) (rate(synapseops_payments_finance_calls_total[5m]))",
                    "{{outcome}} {{status}}"), unit="ops"),
            panel("Finance call duration p50 / p99",
                  q("histogram_quantile(0.5, sum by (le) (rate("
                    "synapseops_payments_finance_call_seconds_bucket[5m])))", "p50"),
                  q("histogram_quantile(0.99, sum by (le) (rate("
                    "synapseops_payments_finance_call_seconds_bucket[5m])))", "p99"), unit="s"),
            panel("Finance calls failing (share, 5 min)",
                  q('sum(rate(synapseops_payments_finance_calls_total{outcome!="settled"}[5m])) '
                    "/ sum(rate(synapseops_payments_finance_calls_total[5m]))", "failing"),
                  unit="percentunit"),
        ),
        road_row(
            "payment-settlement",
            "Settlement",
            panel("Stripe webhooks by outcome",
                  q(f'sum by (outcome) (rate({INGRESS}{{source="stripe"}}[5m]))',
                    "{{outcome}}"), unit="reqps"),
            panel("Consumer lag of the Stripe events",
                  q('sum by (group) (synapseops_kafka_consumer_lag{topic="payments.stripe.events"'
                    "})", "{{group}}")),
        ),
    ),
)  # fmt: skip

INTEGRATION = Dashboard(
    uid="synapseops-integration",
    title="SynapseOps API integration",
    description="API Integration: connector webhooks, deliveries to targets, the REST "
    "pollers and Kafka-topic sources, and the integration-delivery pipeline's road.",
    variables=(Variable("source", "synapseops_ingress_requests_total", "source"),),
    rows=(
        road_row("integration-delivery", "Delivery"),
        row(
            "Sources",
            panel("Webhooks by connector and outcome",
                  q(f'sum by (source, outcome) (rate({INGRESS}{{source=~"$source"}}[5m]))',
                    "{{source}} {{outcome}}"), unit="reqps"),
            panel("Source endpoint failures (15 min)",
                  q("sum by (kind, reason) (increase(synapseops_source_failures_total[15m]))",
                    "{{kind}} {{reason}}")),
            panel("Consumer lag of the integration topics",
                  q('sum by (group, topic) (synapseops_kafka_consumer_lag{topic=~"integration.+"})',
                    "{{group}} {{topic}}")),
        ),
    ),
)  # fmt: skip

NOTIFICATIONS = Dashboard(
    uid="synapseops-notifications",
    title="SynapseOps notifications",
    description="SaaS Notifications: triggers consumed, messages per channel and outcome, "
    "approvals waiting for a person, digests collecting, and the notification-dispatch "
    "pipeline's road.",
    rows=(
        row(
            "Workflows",
            panel("Triggers consumed by kind and outcome",
                  q("sum by (kind, outcome) (rate(synapseops_notifications_triggers_total[5m]))",
                    "{{kind}} {{outcome}}"), unit="ops"),
            panel("Messages by channel kind and outcome",
                  q("sum by (channel_kind, outcome) (rate("
                    "synapseops_notifications_messages_total[5m]))",
                    "{{channel_kind}} {{outcome}}"), unit="ops"),
            panel("Approvals waiting / oldest age (s)",
                  q("max(synapseops_notifications_approvals_pending)", "waiting"),
                  q("max(synapseops_notifications_approval_oldest_age_seconds)", "oldest (s)")),
            panel("Digests collecting",
                  q("max(synapseops_notifications_digests_held)", "held")),
        ),
        row(
            "notification-dispatch on the road",
            panel("Tries by outcome",
                  q('sum by (outcome) (rate(synapseops_road_records_total{pipeline='
                    '"notification-dispatch"}[5m]))', "{{outcome}}"), unit="ops"),
            panel("Processing time p50 / p99",
                  *quantiles("synapseops_road_processing_seconds", "pipeline",
                             '{pipeline="notification-dispatch"}'), unit="s"),
            panel("Consumer lag of the triggers topic",
                  q('sum by (group) (synapseops_kafka_consumer_lag{topic='
                    '"synapseops.notifications.triggers"})', "{{group}}")),
        ),
    ),
)  # fmt: skip

MAPPING = '{mapping=~"$mapping"}'
CRM_CHANGES = "synapseops_crm_changes_total"
HANDLED = 'outcome=~"written|skipped|failed"'

CRM = Dashboard(
    uid="synapseops-crm",
    title="SynapseOps CRM automation",
    description="CRM Automation: changes read from each CRM's feed and written to the other, "
    "per mapping and direction, the sync lag, conflicts held for a person, the CRMs' "
    "answers, and the crm-sync pipeline's road.",
    variables=(Variable("mapping", CRM_CHANGES, "mapping"),),
    rows=(
        row(
            "Sync, per mapping and direction",
            panel("Changes read from the feeds (own: the sync's own writes, dropped)",
                  q(f'sum by (mapping, direction, outcome) (rate({CRM_CHANGES}'
                    f'{{mapping=~"$mapping",outcome=~"read|own"}}[5m]))',
                    "{{mapping}} {{direction}} {{outcome}}"), unit="ops"),
            panel("Changes handled: written, skipped (nothing to do), failed",
                  q(f'sum by (mapping, direction, outcome) (rate({CRM_CHANGES}'
                    f'{{mapping=~"$mapping",{HANDLED}}}[5m]))',
                    "{{mapping}} {{direction}} {{outcome}}"), unit="ops"),
            panel("Changes failing (share, 10 min)",
                  q(f'sum by (mapping, direction) (rate({CRM_CHANGES}'
                    f'{{mapping=~"$mapping",outcome="failed"}}[10m])) / sum by (mapping, '
                    f'direction) (rate({CRM_CHANGES}{{mapping=~"$mapping",{HANDLED}}}[10m]))',
                    "{{mapping}} {{direction}}"), unit="percentunit"),
            panel("Sync lag p50 / p99 (change committed on its CRM → handled)",
                  *quantiles("synapseops_crm_sync_lag_seconds", "direction", window="10m"),
                  unit="s"),
            panel("Conflicts held for a person (1 h)",
                  q("sum by (mapping) (increase("
                    f"synapseops_crm_conflicts_opened_total{MAPPING}[1h]))", "{{mapping}}")),
            panel("Feed reads failing (15 min)",
                  q('sum by (reason) (increase(synapseops_source_failures_total{kind="crm"}'
                    "[15m]))", "{{reason}}")),
            panel("Answers of the CRMs by status, 429s included (sandbox: dev and tests)",
                  q('sum by (target, status) (rate(synapseops_sandbox_requests_total'
                    '{target=~"salesforce|hubspot"}[5m]))', "{{target}} {{status}}"),
                  unit="reqps"),
            panel("429 answers of the CRMs (sandbox: dev and tests)",
                  q('sum by (target) (increase(synapseops_sandbox_requests_total'
                    '{target=~"salesforce|hubspot",status="429"}[1h]))', "{{target}}")),
        ),
        road_row(
            "crm-sync",
            "Sync",
            panel("Consumer lag of the change events",
                  q('sum by (group) (synapseops_kafka_consumer_lag{topic="crm.changes"})',
                    "{{group}}")),
        ),
    ),
)  # fmt: skip

SOURCE = '{source=~"$source"}'
EVENTS = "synapseops_aggregation_events_total"
LOADER_LAG = 'synapseops_kafka_consumer_lag{topic="synapseops.canonical.events"}'
LOADED = "synapseops_loader_rows_total"

AGGREGATION = Dashboard(
    uid="synapseops-aggregation",
    title="SynapseOps data aggregation",
    description="Data Aggregation: canonical events per source (published, duplicates "
    "skipped), ingestion latency, payloads no logic takes, the warehouse loader (rows, "
    "lag, batches, undecodable records), and the aggregation-transform pipeline's road. "
    "Ingestion jobs (polls, uploads) are followed at /api/v1/aggregation/jobs.",
    variables=(Variable("source", EVENTS, "source"),),
    rows=(
        row(
            "Ingestion, per source",
            panel("Canonical events by source and outcome",
                  q(f"sum by (source, outcome) (rate({EVENTS}{SOURCE}[5m]))",
                    "{{source}} {{outcome}}"), unit="ops"),
            panel("Ingestion latency p50 / p99 (observed minus event time)",
                  *quantiles("synapseops_aggregation_ingestion_latency_seconds", "source",
                             SOURCE, window="10m"), unit="s"),
            panel("Duplicates skipped (1 h)",
                  q(f'sum by (source) (increase({EVENTS}{{source=~"$source",'
                    'outcome="duplicate"}[1h]))', "{{source}}")),
            panel("Payloads no logic takes (dead-lettered, 1 h)",
                  q("sum by (logic) (increase("
                    "synapseops_aggregation_payloads_failed_total[1h]))", "{{logic}}")),
            panel("OTLP/HTTP log exports by status",
                  q('sum by (status) (rate(synapseops_http_requests_total{route="/v1/logs"}'
                    "[5m]))", "{{status}}"), unit="reqps"),
            panel("Consumer lag of the sources' topics",
                  q('sum by (group, topic) (synapseops_kafka_consumer_lag'
                    '{topic=~"aggregation.raw|market.ticks"})', "{{group}} {{topic}}")),
        ),
        row(
            "Warehouse loader",
            panel("Rows per second: inserted, skipped (already there), undecodable",
                  q(f"sum by (outcome) (rate({LOADED}[5m]))", "{{outcome}}"), unit="ops"),
            panel("Loader lag (canonical events not loaded, from the broker)",
                  q(f"sum by (group) ({LOADER_LAG})", "{{group}}"),
                  q(f"{LOADER_LAG}", "{{group}} [{{partition}}]")),
            panel("Batch time p50 / p99 (COPY, insert, offsets, commit)",
                  q("histogram_quantile(0.5, sum by (le) (rate("
                    "synapseops_loader_batch_seconds_bucket[5m])))", "p50"),
                  q("histogram_quantile(0.99, sum by (le) (rate("
                    "synapseops_loader_batch_seconds_bucket[5m])))", "p99"), unit="s"),
            panel("Loaders answering (1 up, 0 down) and their inserted rows/s",
                  q('up{job="synapseops-loader"}', "up {{instance}}"),
                  q(f'sum by (instance) (rate({LOADED}{{outcome="inserted"}}[5m]))',
                    "rows/s {{instance}}")),
            panel("Undecodable records skipped (1 h)",
                  q(f'sum by (instance) (increase({LOADED}{{outcome="undecodable"}}[1h]))',
                    "{{instance}}")),
        ),
        road_row("aggregation-transform", "Transform", retries=False),
    ),
)  # fmt: skip

DASHBOARDS = (PLATFORM, PAYMENTS, INTEGRATION, NOTIFICATIONS, CRM, AGGREGATION)


def _variable(variable: Variable) -> dict[str, Any]:
    definition = f"label_values({variable.metric}, {variable.label})"
    return {
        "name": variable.name,
        "label": variable.name,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"query": definition, "refId": "variable"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model: rows, then their panels two abreast."""
    panels: list[dict[str, Any]] = []
    y = 0
    for section in dashboard.rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": section.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        for index, item in enumerate(section.panels):
            x = (index % 2) * WIDTH
            panels.append(
                {
                    "id": len(panels) + 1,
                    "type": item.kind,
                    "title": item.title,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": HEIGHT, "w": WIDTH, "x": x, "y": y},
                    "fieldConfig": {"defaults": {"unit": item.unit}, "overrides": []},
                    "targets": [
                        {
                            "refId": chr(ord("A") + n),
                            "datasource": DATASOURCE,
                            "expr": query.expr,
                            "legendFormat": query.legend,
                        }
                        for n, query in enumerate(item.queries)
                    ],
                }
            )
            if x:
                y += HEIGHT
        if len(section.panels) % 2:
            y += HEIGHT
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["synapseops"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [_variable(variable) for variable in dashboard.variables]},
        "panels": panels,
    }


def rendered() -> dict[str, str]:
    """``{file name: JSON text}`` of every dashboard, as written to :data:`OUT`."""
    return {
        f"{dashboard.uid}.json": json.dumps(render(dashboard), indent=2) + "\n"
        for dashboard in DASHBOARDS
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    files = rendered()
    for stale in OUT.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (OUT / name).write_text(text)


if __name__ == "__main__":
    main()
