"""Data Aggregation's Prometheus metrics (the worker's /metrics; the loader's own port).

Counters count what this process did: a redelivered payload whose events were published
already counts as ``duplicate``. Latency is the OTel sense: observed (ingress) − event time.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "synapseops_aggregation_events_total",
    "Canonical events by data source and outcome (published, duplicate, failed)",
    ["source", "outcome"],
)
PAYLOADS_FAILED = Counter(
    "synapseops_aggregation_payloads_failed_total",
    "Source payloads the TransformationLogic refused (dead-lettered with the reason)",
    ["logic"],
)
LATENCY = Histogram(
    "synapseops_aggregation_ingestion_latency_seconds",
    "Ingestion latency per data source: observed (ingress) time minus the event's own time",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400),
)
LOADED_ROWS = Counter(
    "synapseops_loader_rows_total",
    "Canonical records the warehouse loader handled: inserted, skipped (already there), "
    "undecodable (not canonical Avro), rejected (the warehouse refused the row's data)",
    ["outcome"],
)
DECODED_ROWS = Counter(
    "synapseops_loader_decoded_rows_total",
    "Rows the warehouse loader built, by path: native (the compiled transcoder) or python",
    ["path"],
)
LOAD_SECONDS = Histogram(
    "synapseops_loader_batch_seconds",
    "One loader batch: COPY, insert, offsets, commit",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SEEN_PRUNED = Counter(
    "synapseops_aggregation_seen_pruned_total",
    "De-duplication keys (aggregation_seen) deleted past their retention",
)
