"""IngestionJobs' progress on a real ``/metrics``: a bulk upload over real HTTP is counted by
kind (never by job or source) — started, finished with its state, records in/out/failed and
bytes read — and leaves no job running."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.aggregation.conftest import AUTH

pytestmark = pytest.mark.integration


def _samples(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{base_url}/metrics").text
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("synapseops_ingestion_job"):
            for sample in family.samples:
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:  # fmt: skip
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_bulk_upload_is_counted_on_metrics_by_kind(base_url: str) -> None:
    name = f"metered-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "kind": "bulk", "logic": "bulk"}
    created = httpx.post(f"{base_url}/api/v1/aggregation/sources", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    lines = [
        b'{"id": "m1", "type": "order", "time": "2026-11-30T10:00:00Z"}',
        b"{not json",
        b'{"id": "m3", "type": "order", "time": "2026-11-30T10:00:01Z"}',
    ]
    data = b"\n".join(lines) + b"\n"
    before = _samples(base_url)
    answer = httpx.post(
        f"{base_url}/api/v1/aggregation/sources/{name}/uploads",
        content=data,
        headers=AUTH | {"Content-Type": "application/x-ndjson"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "succeeded"
    after = _samples(base_url)

    def grew(name_: str, **labels: str) -> float:
        return _value(after, name_, **labels) - _value(before, name_, **labels)

    assert grew("synapseops_ingestion_jobs_started_total", kind="bulk") == 1
    assert grew("synapseops_ingestion_jobs_finished_total", kind="bulk", state="succeeded") == 1
    assert grew("synapseops_ingestion_job_records_total", kind="bulk", outcome="in") == 3
    assert grew("synapseops_ingestion_job_records_total", kind="bulk", outcome="out") == 2
    assert grew("synapseops_ingestion_job_records_total", kind="bulk", outcome="failed") == 1
    assert grew("synapseops_ingestion_job_bytes_total", kind="bulk") == len(data)
    assert _value(after, "synapseops_ingestion_jobs_running", kind="bulk") == 0
    # Bounded labels: neither the job nor the source names a series.
    labels = {value for _, pairs in after for _, value in pairs}
    assert name not in labels and answer.json()["id"] not in labels
