"""A CRM's 429 answers on the worker's real ``/metrics``: HubSpot answers 429 (Retry-After 1 s)
to every CRM call for a while; the sync waits each out inside the call, defers the call to
the road's retry tiers when the answers do not stop, and counts both by platform kind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from synapseops.settings import Settings
from tests.integration.crm.world import People, synced_pair, wait_for
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

FAULT = {
    "target": "hubspot",
    "error_rate": 1.0,
    "status": 429,
    "retry_after_s": 1,
    "path_prefix": "/hubspot/crm",
    "seed": 3,
}


@pytest.fixture(scope="module")
def world(
    settings: Settings, kafka_bootstrap: str, database_url: str, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("crm-429")
    with synced_pair(settings, database_url, kafka_bootstrap, data_dir, "ratelimit") as world:
        yield world


def _rate_limited(text: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "synapseops_crm_rate_limited":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["platform"], sample.labels["handling"])
                    found[key] = sample.value
    return found


def test_429_answers_are_counted_waited_and_deferred_by_platform(world: dict[str, Any]) -> None:
    people: People = world["people"]
    worker: WorkerProcess = world["worker"]
    email = f"limited.{uuid.uuid4().hex[:8]}@example.com"
    people.http.post("/_sandbox/faults", json=FAULT).raise_for_status()
    try:
        # A Salesforce change the sync must write to HubSpot, which answers 429 to all.
        people.edit(
            "salesforce",
            op="create",
            object_type="Lead",
            fields={"Email": email, "LastName": "Limited", "Company": "Pace"},
        )

        def counted() -> dict[tuple[str, str], float] | None:
            found = _rate_limited(worker.metrics())
            waited = found.get(("hubspot", "waited"), 0.0)
            deferred = found.get(("hubspot", "deferred"), 0.0)
            return found if waited >= 6 and deferred >= 1 else None

        found = wait_for(counted, what="HubSpot's 429s waited and deferred on /metrics")
    finally:
        people.http.delete("/_sandbox/faults").raise_for_status()
    assert {platform for platform, _ in found} <= {"hubspot", "salesforce"}
    assert found.get(("salesforce", "deferred"), 0.0) == 0.0
    # Once HubSpot answers again, the deferred write lands: nothing was lost to the 429s.
    wait_for(
        lambda: people.by_email("hubspot", "contacts").get(email),
        what="the Lead on HubSpot after the 429s",
    )
