"""SynapseOps's Grafana dashboards, as code: one platform dashboard and one per service.

``python deploy/grafana/dashboards.py`` writes ``deploy/grafana/dashboards/<uid>.json``, the
files Grafana provisions (``deploy/grafana/provisioning``). The unit tests fail when those
files differ from what this writes, and the ops stack test evaluates every panel's PromQL
against a real Prometheus scraping a real stack (``tests/integration/ops``): a panel whose
query errors or returns nothing fails it.

A panel is one line: ``panel(title, q(expr, legend), ..., unit=...)``. A dashboard variable
is a :class:`Variable` over one label of one metric, used in expressions as ``=~"$name"``
(multi-value, "All" matches everything). A new service adds its own :class:`Dashboard` in
``service_dashboards.py`` and to :data:`DASHBOARDS`; the building blocks are in
``dashboard_model.py``; how to read each one is in docs/runbook.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Run as a script (or by runpy in the unit tests): its siblings are importable from here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_model import INGRESS, Dashboard, Variable, panel, q, quantiles, render, row  # noqa: E402
from service_dashboards import AGGREGATION, CRM, INTEGRATION, NOTIFICATIONS, PAYMENTS  # noqa: E402

OUT = Path(__file__).resolve().parent / "dashboards"

PIPELINE = '{pipeline=~"$pipeline"}'
TRIES = "synapseops_road_records_total"
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


DASHBOARDS = (PLATFORM, PAYMENTS, INTEGRATION, NOTIFICATIONS, CRM, AGGREGATION)


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
