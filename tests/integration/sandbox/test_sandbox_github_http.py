"""A GitHub events poller against the real sandbox server: ETag, poll interval, new events,
links that point back at the server, and fault injection."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox.harness import SandboxServer

pytestmark = pytest.mark.integration

EVENTS = "/github/repos/Codertocat/Hello-World/events"
TOKEN = {"Authorization": "token ghp_sandbox"}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with SandboxServer() as sandbox, httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


def test_a_poller_sees_only_new_events_and_survives_a_fault(client: httpx.Client) -> None:
    client.put("/_sandbox/limits", json={"github": {"poll_interval_s": 1}})
    first = client.get(EVENTS, params={"per_page": 2}, headers=TOKEN)
    assert first.status_code == 200 and first.headers["X-Poll-Interval"] == "1"
    next_page = first.headers["Link"].split(";")[0].strip("<>")
    assert next_page.startswith(str(client.base_url)) and "page=2" in next_page
    assert client.get(next_page, headers=TOKEN).status_code == 200
    seen = {e["id"] for e in first.json()}
    etag = first.headers["ETag"]

    unchanged = client.get(EVENTS, params={"per_page": 2}, headers={**TOKEN, "If-None-Match": etag})
    assert unchanged.status_code == 304
    made = client.post(
        "/_sandbox/github/events",
        json={"repo": "Codertocat/Hello-World", "count": 3, "types": ["PushEvent"], "seed": 5},
    ).json()["events"]
    client.post("/_sandbox/faults", json={"target": "github", "count": 1, "status": 503})
    assert client.get(EVENTS, headers={**TOKEN, "If-None-Match": etag}).status_code == 503
    fresh = client.get(EVENTS, params={"per_page": 5}, headers={**TOKEN, "If-None-Match": etag})
    assert fresh.status_code == 200
    new = [e for e in fresh.json() if e["id"] not in seen]
    assert [e["id"] for e in new[:3]] == [e["id"] for e in reversed(made)]
    assert all(e["type"] == "PushEvent" and len(e["payload"]["head"]) == 40 for e in new[:3])
    attempts = [a["status"] for a in client.get("/_sandbox/github/attempts").json()]
    assert attempts == [200, 200, 304, 503, 200]
