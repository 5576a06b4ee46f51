"""The CRM Automation service's Prometheus metrics (served at the worker's /metrics).

Changes are counted per mapping and direction (``salesforce_to_hubspot`` names a change made
on Salesforce) with their outcome: ``written``, ``skipped``, ``failed``; ``read`` and
``own`` (the integration's own changes, never events) are counted by the feeds. The sync lag
is from a change's commit on its side to its pair's batch being handled. The conflicts
still open are the ``crm_conflicts`` table's (``GET /api/v1/crm/conflicts``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from sinks.crm.links import NewConflict
    from streams.crm.writes import Pair

CHANGES = Counter(
    "synapseops_crm_changes_total",
    "CRM changes by mapping, direction and outcome (read, own, written, skipped, failed)",
    ["mapping", "direction", "outcome"],
)
CONFLICTS_OPENED = Counter(
    "synapseops_crm_conflicts_opened_total",
    "Fields held for a person (manual policy), by mapping",
    ["mapping"],
)
SYNC_LAG = Histogram(
    "synapseops_crm_sync_lag_seconds",
    "From a change's commit on its CRM to its pair handled by the sync, by direction",
    ["direction"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)


def direction(side: str) -> str:
    return "salesforce_to_hubspot" if side == "salesforce" else "hubspot_to_salesforce"


def observe(mapping_id: int, pairs: Sequence[Pair], opened: Sequence[NewConflict]) -> None:
    now_ms = time.time() * 1000
    for pair in pairs:
        for trigger in pair.triggers:
            way = direction(trigger.side)
            if pair.failure is not None or pair.plan is None:
                outcome = "failed"
            else:
                outcome = "skipped" if pair.plan.skip is not None else "written"
            CHANGES.labels(str(mapping_id), way, outcome).inc()
            if trigger.at_ms:
                SYNC_LAG.labels(way).observe(max(0.0, (now_ms - trigger.at_ms) / 1000))
    if opened:
        CONFLICTS_OPENED.labels(str(mapping_id)).inc(len(opened))
