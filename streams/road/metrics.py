"""The road's Prometheus metrics (default registry, served by every process's ``/metrics``).

Outcomes of ``synapseops_road_records_total``: ``done``, ``rejected``, ``skipped`` (the
handler's own outcomes), ``retry`` (handed to a retry tier) and ``dead`` (to the dead letter).
A record counts once per try, so a record that used three tiers counts four times.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDS = Counter(
    "synapseops_road_records_total",
    "Records a pipeline tried, by pipeline and outcome of the try",
    ["pipeline", "outcome"],
)
PROCESSING_SECONDS = Histogram(
    "synapseops_road_processing_seconds",
    "Time from handing a record to its pipeline's handler to its outcome or durable hand-off",
    ["pipeline"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter(
    "synapseops_road_retries_total",
    "Records handed to a retry tier, by pipeline and tier (1-based)",
    ["pipeline", "tier"],
)
PARKED = Counter(
    "synapseops_road_parked_total",
    "Records told (Retry-After) to wait longer than every tier, sent to the parking topic",
    ["pipeline"],
)
DEAD_LETTERS = Counter(
    "synapseops_road_dead_letters_routed_total",
    "Records routed to the dead-letter topic, by pipeline and error class",
    ["pipeline", "error_class"],
)
TIER_HOLD_LAG = Histogram(
    "synapseops_road_tier_hold_lag_seconds",
    "How late a tier consumer started a record's retry: actual start minus not-before",
    ["pipeline", "tier"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH_RECORDS = Histogram(
    "synapseops_road_batch_records",
    "Records per batch a pipeline's agent took from one partition (streams/road/intake.py)",
    ["pipeline"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
WAVE_BATCHES = Histogram(
    "synapseops_road_wave_batches",
    "Batches (a partition's, or a retried record) one wave merged (streams/road/coalesce.py)",
    ["pipeline"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
)
