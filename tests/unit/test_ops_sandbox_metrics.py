"""The sandbox's own /metrics: answers by simulated system and status, faults included,
counted per app (two sandboxes in one process never see each other's requests)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from sandbox.harness import app_client


def counts(text: str) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "synapseops_sandbox_requests":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[(sample.labels["target"], sample.labels["status"])] = sample.value
    return found


def test_answers_are_counted_by_target_and_status_injected_faults_included() -> None:
    sandbox = app_client()  # not entered: no lifespan, so no SMTP port is taken
    fault = {"target": "finance", "count": 2, "status": 503}
    assert sandbox.post("/_sandbox/faults", json=fault).status_code == 201
    for _ in range(3):
        sandbox.get("/finance/v1/settlements/stl_unknown")
    sandbox.get("/nowhere")
    found = counts(sandbox.get("/metrics").text)
    assert found[("finance", "503")] == 2
    assert sum(n for (target, _), n in found.items() if target == "finance") == 3
    assert found[("_sandbox", "201")] == 1
    assert found[("other", "404")] == 1
    assert not any(target == "metrics" for target, _ in found)


def test_two_sandboxes_count_apart() -> None:
    first, second = app_client(), app_client()
    first.get("/erp/api/orders")
    assert any(target == "erp" for target, _ in counts(first.get("/metrics").text))
    assert not any(target == "erp" for target, _ in counts(second.get("/metrics").text))
