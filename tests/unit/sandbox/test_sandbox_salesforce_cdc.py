"""Salesforce Change Data Capture, polled: event shapes, origins, replay ids, pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sandbox.harness import app_client
from sandbox.identity import DEFAULT_SALESFORCE_TOKEN

INTEGRATION = {"Authorization": f"Bearer {DEFAULT_SALESFORCE_TOKEN}"}
OTHER = {"Authorization": "Bearer 00D000000000002!marketing-tool"}
SOBJECTS = "/salesforce/services/data/v60.0/sobjects"
FEED = "/salesforce/cdc/data"


@pytest.fixture
def sf() -> Iterator[TestClient]:
    yield app_client()


def events(sf: TestClient, channel: str = "ChangeEvents", **params: Any) -> dict[str, Any]:
    params.setdefault("replayId", -2)
    answer = sf.get(f"{FEED}/{channel}", params=params, headers=INTEGRATION)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def headers_of(feed: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["payload"]["ChangeEventHeader"] for e in feed["events"]]


def test_create_update_delete_undelete_events_are_shaped_like_cdc(sf: TestClient) -> None:
    body = {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com", "Title": "Dr"}
    record_id = sf.post(f"{SOBJECTS}/Contact", json=body, headers=INTEGRATION).json()["id"]
    sf.patch(
        f"{SOBJECTS}/Contact/{record_id}",
        json={"FirstName": "Augusta", "Title": None},
        headers=INTEGRATION,
    )
    sf.delete(f"{SOBJECTS}/Contact/{record_id}", headers=INTEGRATION)
    sf.post(
        "/_sandbox/salesforce/edits",
        json={"op": "undelete", "object_type": "Contact", "id": record_id},
    )
    feed = events(sf)
    assert [e["event"]["replayId"] for e in feed["events"]] == [1, 2, 3, 4]
    assert [h["changeType"] for h in headers_of(feed)] == ["CREATE", "UPDATE", "DELETE", "UNDELETE"]

    create, update, delete, undelete = (e["payload"] for e in feed["events"])
    header = create["ChangeEventHeader"]
    assert header["entityName"] == "Contact" and header["recordIds"] == [record_id]
    assert header["changedFields"] == [] and header["commitUser"].startswith("005")
    assert isinstance(header["commitTimestamp"], int) and header["transactionKey"]
    assert header["sequenceNumber"] == 1
    # Name is a compound field in change events, as on Salesforce.
    assert create["Name"] == {"Salutation": None, "FirstName": "Ada", "LastName": "Lovelace"}
    assert create["Email"] == "ada@example.com"
    assert create["CreatedById"] == create["LastModifiedById"] == header["commitUser"]

    assert update["ChangeEventHeader"]["changedFields"] == [
        "Name.FirstName",
        "Title",
        "LastModifiedDate",
    ]
    assert update["ChangeEventHeader"]["nulledFields"] == ["Title"]
    assert update["Name"] == {"FirstName": "Augusta"} and "Email" not in update
    assert set(delete) == {"ChangeEventHeader"}
    assert undelete["Name"]["FirstName"] == "Augusta"
    assert feed["nextReplayId"] == 4 and feed["latestReplayId"] == 4 and not feed["hasMore"]


def test_origin_says_who_changed_the_record(sf: TestClient) -> None:
    lead = {"LastName": "Norman", "Company": "Wheelworks"}
    record_id = sf.post(f"{SOBJECTS}/Lead", json=lead, headers=INTEGRATION).json()["id"]
    sf.patch(f"{SOBJECTS}/Lead/{record_id}", json={"Title": "Buyer"}, headers=OTHER)
    sf.patch(
        f"{SOBJECTS}/Lead/{record_id}",
        json={"Title": "CFO"},
        headers={**INTEGRATION, "Sforce-Call-Options": "client=backfill-job"},
    )
    sf.post(
        "/_sandbox/salesforce/edits",
        json={"op": "update", "object_type": "Lead", "id": record_id, "fields": {"Title": "CEO"}},
    )
    origins = [(h["changeOrigin"], h["commitUser"]) for h in headers_of(events(sf))]
    integration_user = origins[0][1]
    assert origins[0] == ("com/salesforce/api/rest/60.0;client=synapseops", integration_user)
    assert origins[1][0] == "com/salesforce/api/rest/60.0" and origins[1][1] != integration_user
    assert origins[2] == ("com/salesforce/api/rest/60.0;client=backfill-job", integration_user)
    assert origins[3][0] == "" and origins[3][1] not in (integration_user, origins[1][1])
    # Another user saved → LastModifiedById is among the changed fields.
    assert "LastModifiedById" in headers_of(events(sf))[1]["changedFields"]


def test_a_save_that_changes_nothing_is_still_an_update_event(sf: TestClient) -> None:
    body = {"LastName": "Same"}
    record_id = sf.post(f"{SOBJECTS}/Contact", json=body, headers=INTEGRATION).json()["id"]
    sf.patch(f"{SOBJECTS}/Contact/{record_id}", json=body, headers=INTEGRATION)
    (_, noop) = headers_of(events(sf))
    assert (noop["changeType"], noop["changedFields"]) == ("UPDATE", ["LastModifiedDate"])


def test_replay_ids_page_the_feed_and_channels_pick_an_object(sf: TestClient) -> None:
    records = [
        {
            "attributes": {"type": "Lead" if n % 2 else "Contact"},
            "LastName": f"N{n}",
            "Company": "C",
        }
        for n in range(7)
    ]
    sf.post(
        "/salesforce/services/data/v60.0/composite/sobjects",
        json={"records": records},
        headers=INTEGRATION,
    )
    page = events(sf, limit=3)
    assert [e["event"]["replayId"] for e in page["events"]] == [1, 2, 3] and page["hasMore"]
    rest = events(sf, replayId=page["nextReplayId"], limit=100)
    assert [e["event"]["replayId"] for e in rest["events"]] == [4, 5, 6, 7] and not rest["hasMore"]
    # One call, one transaction: one key, sequence numbers in order.
    all_headers = headers_of(page) + headers_of(rest)
    assert len({h["transactionKey"] for h in all_headers}) == 1
    assert [h["sequenceNumber"] for h in all_headers] == list(range(1, 8))

    leads = events(sf, "LeadChangeEvent")
    assert {h["entityName"] for h in headers_of(leads)} == {"Lead"} and len(leads["events"]) == 3
    assert leads["channel"] == "/data/LeadChangeEvent"
    tip = events(sf, replayId=-1)
    assert tip["events"] == [] and tip["nextReplayId"] == 7


@pytest.mark.parametrize("replay_id", ["99", "-7", "abc"])
def test_an_unknown_replay_id_is_refused(sf: TestClient, replay_id: str) -> None:
    refused = sf.get(f"{FEED}/ChangeEvents", params={"replayId": replay_id}, headers=INTEGRATION)
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "INVALID_REPLAY_ID"
    assert sf.get(f"{FEED}/NotAChannel", headers=INTEGRATION).status_code == 404
    assert sf.get(f"{FEED}/ChangeEvents").status_code == 401


def test_the_plain_feed_keeps_its_shape_and_adds_deletes(sf: TestClient) -> None:
    record_id = sf.post(f"{SOBJECTS}/Account", json={"Name": "A"}, headers=INTEGRATION).json()["id"]
    sf.delete(f"{SOBJECTS}/Account/{record_id}", headers=INTEGRATION)
    feed = sf.get("/salesforce/_changes", params={"since": 0}, headers=INTEGRATION).json()
    assert [(c["seq"], c["op"], c["id"]) for c in feed["changes"]] == [
        (1, "created", record_id),
        (2, "deleted", record_id),
    ]
    assert set(feed["changes"][0]) == {"seq", "op", "object_type", "id", "at", "changed", "fields"}
    assert feed["changes"][0]["fields"] == {"Name": "A"} and feed["last_seq"] == 2
