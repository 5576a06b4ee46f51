"""The notification service's Prometheus metrics (default registry, the worker's /metrics).

The approval gauges are read from PostgreSQL by the waker (every worker sets the same value:
alerts take ``max``); the counters count what this process did.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

TRIGGERS = Counter(
    "synapseops_notifications_triggers_total",
    "Triggers consumed, by kind and outcome (started, duplicate, no_workflow, own_dead_letter)",
    ["kind", "outcome"],
)
MESSAGES = Counter(
    "synapseops_notifications_messages_total",
    "Messages by channel kind and outcome (sent, retry, failed, fallback)",
    ["channel_kind", "outcome"],
)
RUNS_FINISHED = Counter(
    "synapseops_notifications_runs_finished_total",
    "Workflow runs finished, by how (done, throttled, digested, approval_expired, ...)",
    ["outcome"],
)
APPROVALS_PENDING = Gauge(
    "synapseops_notifications_approvals_pending",
    "Approvals waiting for a person's answer",
)
APPROVAL_OLDEST_AGE = Gauge(
    "synapseops_notifications_approval_oldest_age_seconds",
    "Age of the oldest approval still waiting (0 when none waits)",
)
DIGESTS_HELD = Gauge(
    "synapseops_notifications_digests_held",
    "Digests collecting (their window not closed or not sent yet)",
)

for _kind in ("slack_bot", "slack_webhook", "teams_workflow", "email"):
    for _outcome in ("sent", "retry", "failed"):
        MESSAGES.labels(_kind, _outcome)
