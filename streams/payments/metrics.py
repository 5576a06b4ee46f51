"""The Payment Gateway's Prometheus metrics (default registry, served at the worker's /metrics).

Counters count transitions made by this process (a settlement booked once counts once, however
often its event is redelivered); the current totals per state are the ``settlements`` table's.
"""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

SETTLEMENTS = Counter(
    "synapseops_payments_settlements_total",
    "Settlement entries moved into a state, by state, kind and currency",
    ["state", "kind", "currency"],
)
AMOUNT_MINOR = Counter(
    "synapseops_payments_settled_amount_minor_total",
    "Amounts booked in the finance ledger, in the currency's minor units",
    ["currency", "kind"],
)
SETTLEMENT_LATENCY = Histogram(
    "synapseops_payments_settlement_latency_seconds",
    "From ingress of the Stripe event that asked for a booking to its ledger entry recorded; "
    "path=approved includes the time a person took",
    ["path"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
FINANCE_CALLS = Counter(
    "synapseops_payments_finance_calls_total",
    "Calls to the finance ledger by outcome (settled, rejected, retry, fatal) and HTTP status",
    ["outcome", "status"],
)
FINANCE_SECONDS = Histogram(
    "synapseops_payments_finance_call_seconds",
    "Duration of finance ledger calls, whatever their outcome",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LARGE_PAYMENT_TRIGGERS = Counter(
    "synapseops_payments_large_payment_triggers_total",
    "large_payment notification triggers published (a redelivery may publish one again)",
)


Metric = TypeVar("Metric", bound=MetricWrapperBase)
_CHILDREN: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}


def child(metric: Metric, *labels: str) -> Metric:
    """``metric.labels(*labels)``, looked up once: a settlement batch counts a few metrics per
    settlement, and ``labels`` takes a lock and builds its key on every call. The gateway
    never removes a child, so the one it got first stays the one Prometheus reads."""
    key = (id(metric), labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found  # type: ignore[return-value]
