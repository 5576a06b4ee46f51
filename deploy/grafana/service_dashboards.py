"""One Grafana dashboard per service: payments, integration, notifications, CRM, aggregation.

Each has its road row (:func:`dashboard_model.road_row`) and the panels its runbook section reads
(docs/runbook.md). Written out by ``dashboards.py``.
"""

from __future__ import annotations

from dashboard_model import INGRESS, Dashboard, Variable, panel, q, quantiles, road_row, row

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
