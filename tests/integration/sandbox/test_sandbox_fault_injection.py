"""Fault injection over real HTTP: counts, rates, Retry-After, latency, attempts vs received."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.harness import SandboxServer

pytestmark = pytest.mark.integration

SLACK = {"Authorization": "Bearer xoxb-test"}
MESSAGE = {"channel": "#alerts", "text": "disk full"}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with SandboxServer() as sandbox, httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


def _post_message(client: httpx.Client) -> httpx.Response:
    return client.post("/slack/api/chat.postMessage", json=MESSAGE, headers=SLACK)


def test_health(client: httpx.Client) -> None:
    response = client.get("/_sandbox/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_count_fails_exactly_n_then_passes_and_attempts_count_every_try(
    client: httpx.Client,
) -> None:
    fault = {"target": "slack", "count": 2, "status": 500}
    assert client.post("/_sandbox/faults", json=fault).status_code == 201
    statuses = [_post_message(client).status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]

    attempts = client.get("/_sandbox/slack/attempts").json()
    received = client.get("/_sandbox/slack/received").json()
    assert [a["outcome"] for a in attempts] == ["injected", "injected", "accepted", "accepted"]
    assert len(received) == 2
    assert [r["seq"] for r in received] == [attempts[2]["seq"], attempts[3]["seq"]]
    first = received[0]
    assert first["method"] == "POST"
    assert first["path"] == "/slack/api/chat.postMessage"
    assert first["body"] == MESSAGE
    assert first["headers"]["authorization"] == "Bearer xoxb-test"
    assert first["auth_scheme"] == "bearer"
    assert first["received_at"] <= received[1]["received_at"]

    (listed,) = client.get("/_sandbox/faults").json()["faults"]
    assert (listed["remaining"], listed["injected"], listed["passed"]) == (0, 2, 2)


def test_429_and_503_carry_retry_after(client: httpx.Client) -> None:
    client.post(
        "/_sandbox/faults", json={"target": "slack", "count": 1, "status": 429, "retry_after_s": 7}
    )
    limited = _post_message(client)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    client.post(
        "/_sandbox/faults", json={"target": "slack", "count": 1, "status": 503, "retry_after_s": 1}
    )
    unavailable = _post_message(client)
    assert (unavailable.status_code, unavailable.headers["Retry-After"]) == (503, "1")
    client.post(
        "/_sandbox/faults", json={"target": "slack", "count": 1, "status": 500, "retry_after_s": 1}
    )
    assert "Retry-After" not in _post_message(client).headers


def test_error_rate_fails_about_that_share(client: httpx.Client) -> None:
    # 200 messages to one channel at once: Slack's own rate limit is not what this measures.
    client.put("/_sandbox/limits", json={"slack": {"enabled": False}})
    client.post("/_sandbox/faults", json={"target": "slack", "error_rate": 0.5, "seed": 11})
    statuses = [_post_message(client).status_code for _ in range(200)]
    failures = statuses.count(503)
    assert failures + statuses.count(200) == 200
    assert 70 < failures < 130
    assert len(client.get("/_sandbox/slack/received").json()) == 200 - failures
    assert len(client.get("/_sandbox/slack/attempts").json()) == 200


def test_latency_makes_a_short_timeout_client_time_out_but_the_target_still_accepts(
    client: httpx.Client,
) -> None:
    client.post("/_sandbox/faults", json={"target": "slack", "latency_ms": 800})
    with pytest.raises(httpx.ReadTimeout):
        client.post("/slack/api/chat.postMessage", json=MESSAGE, headers=SLACK, timeout=0.2)
    # The slow server did the work anyway: the retry must be safe against this.
    (accepted,) = client.get("/_sandbox/slack/received").json()
    assert accepted["body"] == MESSAGE


def test_faults_are_per_target_and_never_touch_the_control_plane(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"target": "teams", "error_rate": 1.0, "status": 500})
    assert client.get("/_sandbox/health").status_code == 200
    assert _post_message(client).status_code == 200
    assert client.post("/teams/webhook/abc", json={}).status_code == 500


def test_delete_clears_faults_one_target_or_all(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"target": "slack", "error_rate": 1.0})
    client.post("/_sandbox/faults", json={"target": "erp", "error_rate": 1.0})
    assert client.delete("/_sandbox/faults", params={"target": "erp"}).json() == {"cleared": 1}
    assert [f["target"] for f in client.get("/_sandbox/faults").json()["faults"]] == ["slack"]
    assert client.delete("/_sandbox/faults").json() == {"cleared": 1}
    assert _post_message(client).status_code == 200


def test_bad_fault_bodies_are_refused(client: httpx.Client) -> None:
    for bad in (
        {"target": "nowhere"},
        {"target": "erp", "error_rate": 2},
        {"target": "erp", "status": 302},
    ):
        assert client.post("/_sandbox/faults", json=bad).status_code == 422


def test_received_can_be_cleared(client: httpx.Client) -> None:
    _post_message(client)
    assert client.delete("/_sandbox/slack/received").status_code == 200
    assert client.get("/_sandbox/slack/received").json() == []
    assert client.get("/_sandbox/slack/attempts").json() == []
    assert client.get("/_sandbox/nowhere/received").status_code == 404
