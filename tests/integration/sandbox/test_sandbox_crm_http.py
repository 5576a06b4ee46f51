"""The two CRMs over real HTTP: a sync's round trip seen in the logs, faults, concurrency,
and HubSpot's signed webhook pushes to a real receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sandbox.harness import SandboxServer, free_port
from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, DEFAULT_SALESFORCE_TOKEN

pytestmark = pytest.mark.integration

SF = {"Authorization": f"Bearer {DEFAULT_SALESFORCE_TOKEN}"}
HS = {"Authorization": f"Bearer {DEFAULT_HUBSPOT_TOKEN}"}
API = "/salesforce/services/data/v60.0"
OBJECTS = "/hubspot/crm/v3/objects"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=10) as http:
        yield http


def wait_for(condition: Any, what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_sync_round_trip_shows_one_write_per_change_and_its_echo_is_recognisable(
    client: httpx.Client,
) -> None:
    """A person edits a HubSpot contact; "the service" writes it to Salesforce and back."""
    made = client.post(
        f"{OBJECTS}/contacts", json={"properties": {"email": "ada@example.com"}}, headers=HS
    ).json()
    cursor = client.get("/hubspot/_events", headers=HS).json()["cursor"]
    tip = client.get(
        "/salesforce/cdc/data/ChangeEvents", params={"replayId": -1}, headers=SF
    ).json()

    client.post(
        "/_sandbox/hubspot/edits",
        json={
            "op": "update",
            "object_type": "contacts",
            "id": made["id"],
            "fields": {"lastname": "Lovelace"},
        },
    )
    (human,) = client.get("/hubspot/_events", params={"after": cursor}, headers=HS).json()[
        "results"
    ]
    assert (human["changeSource"], human["propertyName"]) == ("CRM_UI", "lastname")

    # The service's write to Salesforce ...
    upsert = client.patch(
        f"{API}/sobjects/Contact/Email/ada@example.com",
        json={"LastName": human["propertyValue"]},
        headers=SF,
    )
    assert upsert.status_code == 201
    # ... comes back on the Salesforce feed marked as the integration's own change.
    feed = client.get(
        "/salesforce/cdc/data/ContactChangeEvent",
        params={"replayId": tip["nextReplayId"], "wait": 5},
        headers=SF,
    ).json()
    (echo,) = feed["events"]
    header = echo["payload"]["ChangeEventHeader"]
    identities = client.get("/_sandbox/crm/identities").json()
    assert header["changeOrigin"].endswith(";client=synapseops")
    assert header["commitUser"] == identities["salesforce"]["integration"]["user_id"]

    writes = client.get("/_sandbox/salesforce/writes").json()["writes"]
    assert Counter((w["id"], w["actor"]) for w in writes) == {
        (upsert.json()["id"], "integration"): 1
    }
    attempts = {a["seq"]: a for a in client.get("/_sandbox/salesforce/attempts").json()}
    assert attempts[writes[0]["request_seq"]]["method"] == "PATCH"


def test_faults_and_rate_limits_apply_to_the_crms(client: httpx.Client) -> None:
    client.post(
        "/_sandbox/faults",
        json={"target": "hubspot", "count": 2, "status": 429, "retry_after_s": 2},
    )
    body = {"inputs": [{"properties": {"email": "x@example.com"}}]}
    tries = [
        client.post(f"{OBJECTS}/contacts/batch/create", json=body, headers=HS) for _ in range(3)
    ]
    assert [t.status_code for t in tries] == [429, 429, 201]
    assert tries[0].headers["Retry-After"] == "2"
    client.post("/_sandbox/faults", json={"target": "salesforce", "count": 1, "status": 503})
    assert client.get(f"{API}/limits", headers=SF).status_code == 503
    assert client.get(f"{API}/limits", headers=SF).status_code == 200
    outcomes = [a["outcome"] for a in client.get("/_sandbox/hubspot/attempts").json()]
    assert outcomes == ["injected", "injected", "accepted"]
    writes = client.get("/_sandbox/hubspot/writes").json()["writes"]
    assert len(writes) == 1  # the refused tries never reached the store


def test_concurrent_batches_never_lose_or_double_a_record(
    client: httpx.Client, sandbox: SandboxServer
) -> None:
    client.put("/_sandbox/limits", json={"hubspot": {"enabled": False}})
    errors: list[BaseException] = []

    def upsert(worker: int) -> None:
        try:
            with httpx.Client(base_url=sandbox.url, timeout=20) as http:
                for batch in range(5):
                    inputs = [
                        {
                            "idProperty": "email",
                            "id": f"p{n}@example.com",
                            "properties": {"lastname": f"w{worker}"},
                        }
                        for n in range(batch * 20, batch * 20 + 20)
                    ]
                    answer = http.post(
                        f"{OBJECTS}/contacts/batch/upsert", json={"inputs": inputs}, headers=HS
                    )
                    assert answer.status_code == 200, answer.text
        except BaseException as exc:  # collected for the main thread to raise
            errors.append(exc)

    threads = [threading.Thread(target=upsert, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    records = client.get("/_sandbox/hubspot/records", params={"object_type": "contacts"}).json()
    emails = [r["properties"]["email"] for r in records["records"]]
    assert len(emails) == len(set(emails)) == 100
    writes = client.get("/_sandbox/hubspot/writes").json()["writes"]
    assert Counter(w["op"] for w in writes) == {"create": 100, "update": 500}
    feed_seqs = [
        c["seq"]
        for c in client.get("/hubspot/_changes", params={"limit": 5000}, headers=HS).json()[
            "changes"
        ]
    ]
    assert feed_seqs == list(range(1, len(feed_seqs) + 1))


class _Receiver(BaseHTTPRequestHandler):
    deliveries: list[dict[str, Any]] = []
    failures_left = 1

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).deliveries.append({"headers": dict(self.headers), "raw": raw})
        status = 500 if type(self).failures_left > 0 else 204
        type(self).failures_left -= 1
        self.send_response(status)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_webhook_pushes_are_signed_v3_and_retried_with_a_higher_attempt_number(
    client: httpx.Client,
) -> None:
    _Receiver.deliveries, _Receiver.failures_left = [], 1
    port = free_port()
    receiver = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}/hooks/hubspot"
    try:
        client.put(
            "/_sandbox/hubspot/webhooks",
            json={"target_url": url, "client_secret": "s3cret", "retry_base_s": 0.1},
        )
        client.post(
            f"{OBJECTS}/contacts", json={"properties": {"email": "w@example.com"}}, headers=HS
        )
        wait_for(lambda: len(_Receiver.deliveries) >= 2, "a failed push and its retry")
    finally:
        client.delete("/_sandbox/hubspot/webhooks")
        receiver.shutdown()
    first, retry = _Receiver.deliveries[:2]
    for delivery in (first, retry):
        headers, raw = delivery["headers"], delivery["raw"]
        assert headers["X-HubSpot-Signature-Version"] == "v3"
        signed = b"POST" + url.encode() + raw + headers["X-HubSpot-Request-Timestamp"].encode()
        expected = base64.b64encode(hmac.new(b"s3cret", signed, hashlib.sha256).digest()).decode()
        assert hmac.compare_digest(headers["X-HubSpot-Signature-v3"], expected)
    events = [json.loads(d["raw"]) for d in (first, retry)]
    assert [e["subscriptionType"] for e in events[0]] == [
        "contact.creation",
        "contact.propertyChange",
    ]
    assert {e["attemptNumber"] for e in events[0]} == {0} and {
        e["attemptNumber"] for e in events[1]
    } == {1}
    assert [e["eventId"] for e in events[0]] == [e["eventId"] for e in events[1]]
    deliveries = client.get("/_sandbox/hubspot/webhooks").json()["deliveries"]
    assert [d["status"] for d in deliveries[:2]] == [500, 204]
