"""The HubSpot shape in-process: objects, batches, search, change events, rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sandbox.harness import app_client
from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, HUBSPOT_APP_ID

INTEGRATION = {"Authorization": f"Bearer {DEFAULT_HUBSPOT_TOKEN}"}
OTHER = {"Authorization": "Bearer pat-na1-another-private-app"}
OBJECTS = "/hubspot/crm/v3/objects"


@pytest.fixture
def hs() -> Iterator[TestClient]:
    yield app_client()


def _contact(n: int, **extra: Any) -> dict[str, Any]:
    return {"properties": {"email": f"person{n}@example.com", "firstname": f"P{n}", **extra}}


def test_objects_answer_strings_system_properties_and_default_property_sets(
    hs: TestClient,
) -> None:
    created = hs.post(f"{OBJECTS}/contacts", json=_contact(1, employees=12), headers=INTEGRATION)
    assert created.status_code == 201
    contact = created.json()
    assert contact["id"].isdigit() and contact["archived"] is False
    properties = contact["properties"]
    assert properties["employees"] == "12" and properties["hs_object_id"] == contact["id"]
    assert properties["createdate"] == contact["createdAt"] == properties["lastmodifieddate"]
    fetched = hs.get(f"{OBJECTS}/contacts/{contact['id']}", headers=INTEGRATION).json()
    assert set(fetched["properties"]) == {
        "email",
        "firstname",
        "lastname",
        "createdate",
        "lastmodifieddate",
        "hs_object_id",
    }
    assert fetched["properties"]["lastname"] is None
    picked = hs.get(
        f"{OBJECTS}/0-1/{contact['id']}", params={"properties": "employees"}, headers=INTEGRATION
    ).json()
    assert picked["properties"]["employees"] == "12" and "email" not in picked["properties"]

    deal = hs.post(
        f"{OBJECTS}/deals",
        json={"properties": {"dealname": "Fleet", "amount": 4200}},
        headers=INTEGRATION,
    ).json()
    assert "hs_lastmodifieddate" in deal["properties"] and deal["properties"]["amount"] == "4200"

    assert hs.delete(f"{OBJECTS}/contacts/{contact['id']}", headers=INTEGRATION).status_code == 204
    assert hs.get(f"{OBJECTS}/contacts/{contact['id']}", headers=INTEGRATION).status_code == 404
    archived = hs.get(
        f"{OBJECTS}/contacts/{contact['id']}", params={"archived": "true"}, headers=INTEGRATION
    ).json()
    assert archived["archived"] is True and archived["archivedAt"]
    unknown = hs.get(f"{OBJECTS}/widgets/1", headers=INTEGRATION)
    assert unknown.status_code == 400 and "Unable to infer object type" in unknown.json()["message"]


def test_emails_are_unique_valid_and_read_only_properties_are_refused(hs: TestClient) -> None:
    first = hs.post(f"{OBJECTS}/contacts", json=_contact(1), headers=INTEGRATION).json()
    again = hs.post(
        f"{OBJECTS}/contacts",
        json={"properties": {"email": "PERSON1@example.com"}},
        headers=INTEGRATION,
    )
    assert again.status_code == 409
    body = again.json()
    assert body["category"] == "CONFLICT" and body["message"].endswith(first["id"])
    assert body["status"] == "error" and body["correlationId"]
    invalid = hs.post(
        f"{OBJECTS}/contacts", json={"properties": {"email": "nope"}}, headers=INTEGRATION
    )
    assert invalid.status_code == 400 and "INVALID_EMAIL" in invalid.json()["message"]
    read_only = hs.patch(
        f"{OBJECTS}/contacts/{first['id']}",
        json={"properties": {"hs_object_id": "1"}},
        headers=INTEGRATION,
    )
    assert read_only.status_code == 400
    by_email = hs.patch(
        f"{OBJECTS}/contacts/person1@example.com",
        params={"idProperty": "email"},
        json={"properties": {"lastname": "Norman"}},
        headers=INTEGRATION,
    )
    assert by_email.status_code == 200 and by_email.json()["properties"]["lastname"] == "Norman"


def test_authentication_errors(hs: TestClient) -> None:
    missing = hs.get(f"{OBJECTS}/contacts/1")
    assert missing.status_code == 401 and missing.json()["category"] == "INVALID_AUTHENTICATION"
    hs.put("/_sandbox/hubspot/identities", json={"revoke_tokens": [DEFAULT_HUBSPOT_TOKEN]})
    revoked = hs.get(f"{OBJECTS}/contacts/1", headers=INTEGRATION)
    assert revoked.status_code == 401 and revoked.json()["category"] == "EXPIRED_AUTHENTICATION"


def test_batch_create_reports_each_failed_input_in_a_207(hs: TestClient) -> None:
    inputs = [
        _contact(1),
        {**_contact(2, email="broken"), "objectWriteTraceId": "row-2"},
        _contact(1),  # the same e-mail again, within the same call
        _contact(3),
    ]
    answer = hs.post(
        f"{OBJECTS}/contacts/batch/create", json={"inputs": inputs}, headers=INTEGRATION
    )
    assert answer.status_code == 207
    body = answer.json()
    assert body["status"] == "COMPLETE" and body["numErrors"] == 2
    assert [r["properties"]["email"] for r in body["results"]] == [
        "person1@example.com",
        "person3@example.com",
    ]
    assert [e["category"] for e in body["errors"]] == ["VALIDATION_ERROR", "CONFLICT"]
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["row-2"]
    assert body["startedAt"] <= body["completedAt"]
    clean = hs.post(
        f"{OBJECTS}/contacts/batch/create", json={"inputs": [_contact(9)]}, headers=INTEGRATION
    )
    assert clean.status_code == 201 and "errors" not in clean.json()


def test_batches_take_at_most_100_inputs(hs: TestClient) -> None:
    inputs = [_contact(n) for n in range(101)]
    refused = hs.post(
        f"{OBJECTS}/contacts/batch/create", json={"inputs": inputs}, headers=INTEGRATION
    )
    assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"
    assert "100" in refused.json()["message"]
    ok = hs.post(
        f"{OBJECTS}/contacts/batch/create", json={"inputs": inputs[:100]}, headers=INTEGRATION
    )
    assert ok.status_code == 201 and len(ok.json()["results"]) == 100


def test_batch_upsert_update_read_and_archive(hs: TestClient) -> None:
    existing = hs.post(f"{OBJECTS}/contacts", json=_contact(1), headers=INTEGRATION).json()
    upserts = [
        {"idProperty": "email", "id": "person1@example.com", "properties": {"lastname": "One"}},
        {"idProperty": "email", "id": "person2@example.com", "properties": {"lastname": "Two"}},
    ]
    upserted = hs.post(
        f"{OBJECTS}/contacts/batch/upsert", json={"inputs": upserts}, headers=INTEGRATION
    ).json()
    assert [(r["id"] == existing["id"], r["new"]) for r in upserted["results"]] == [
        (True, False),
        (False, True),
    ]
    second = upserted["results"][1]
    assert second["properties"]["email"] == "person2@example.com"

    updates = [
        {"id": existing["id"], "properties": {"jobtitle": "CFO"}},
        {"id": "999999", "properties": {"jobtitle": "x"}},
    ]
    updated = hs.post(
        f"{OBJECTS}/contacts/batch/update", json={"inputs": updates}, headers=INTEGRATION
    )
    assert updated.status_code == 207
    (error,) = updated.json()["errors"]
    assert error["category"] == "OBJECT_NOT_FOUND" and error["context"]["ids"] == ["999999"]

    read = hs.post(
        f"{OBJECTS}/contacts/batch/read",
        json={"properties": ["jobtitle"], "inputs": [{"id": existing["id"]}, {"id": "424242"}]},
        headers=INTEGRATION,
    )
    assert read.status_code == 207
    assert read.json()["results"][0]["properties"]["jobtitle"] == "CFO"
    assert read.json()["errors"][0]["context"]["ids"] == ["424242"]

    archived = hs.post(
        f"{OBJECTS}/contacts/batch/archive",
        json={"inputs": [{"id": existing["id"]}, {"id": second["id"]}]},
        headers=INTEGRATION,
    )
    assert archived.status_code == 204
    assert hs.get(f"{OBJECTS}/contacts/{second['id']}", headers=INTEGRATION).status_code == 404


def test_search_by_modification_date_pages_with_after(hs: TestClient) -> None:
    made = hs.post(
        f"{OBJECTS}/contacts/batch/create",
        json={"inputs": [_contact(n) for n in range(25)]},
        headers=INTEGRATION,
    ).json()
    since = made["results"][0]["properties"]["lastmodifieddate"]
    touched = [r["id"] for r in made["results"][:3]]
    for record_id in touched:
        hs.patch(
            f"{OBJECTS}/contacts/{record_id}",
            json={"properties": {"lastname": "X"}},
            headers=INTEGRATION,
        )
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastname", "operator": "EQ", "value": "x"}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["lastname"],
    }
    found = hs.post(f"{OBJECTS}/contacts/search", json=body, headers=INTEGRATION).json()
    assert found["total"] == 3 and [r["id"] for r in found["results"]] == touched
    assert "paging" not in found

    everything = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since}]}
        ],
        "limit": 10,
    }
    seen: list[str] = []
    while True:
        page = hs.post(f"{OBJECTS}/contacts/search", json=everything, headers=INTEGRATION).json()
        seen += [r["id"] for r in page["results"]]
        if "paging" not in page:
            break
        everything["after"] = page["paging"]["next"]["after"]
    assert page["total"] == 25 and sorted(seen) == sorted(r["id"] for r in made["results"])
    capped = hs.post(
        f"{OBJECTS}/contacts/search", json={"after": "9990", "limit": 20}, headers=INTEGRATION
    )
    assert capped.status_code == 400


def test_ten_secondly_rolling_limit_answers_hubspots_429(hs: TestClient) -> None:
    hs.put("/_sandbox/limits", json={"hubspot": {"max_requests": 3}})
    answers = [hs.get(f"{OBJECTS}/contacts/1", headers=INTEGRATION) for _ in range(4)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert [a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    limited = answers[3]
    assert int(limited.headers["Retry-After"]) >= 1
    body = limited.json()
    assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    # Per app: another app's token still has its quota; the feeds use none.
    assert hs.get(f"{OBJECTS}/contacts/1", headers=OTHER).status_code == 404
    assert hs.get("/hubspot/_events", headers=INTEGRATION).status_code == 200
    hs.put("/_sandbox/limits", json={"hubspot": {"enabled": False}})
    assert hs.get(f"{OBJECTS}/contacts/1", headers=INTEGRATION).status_code == 404


def test_search_has_its_own_secondly_limit_without_headers(hs: TestClient) -> None:
    hs.put("/_sandbox/limits", json={"hubspot": {"search_per_second": 2}})
    answers = [
        hs.post(f"{OBJECTS}/contacts/search", json={}, headers=INTEGRATION) for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "X-HubSpot-RateLimit-Max" not in answers[0].headers
    assert answers[2].json()["policyName"] == "SECONDLY"


def test_change_events_say_what_changed_and_who_changed_it(hs: TestClient) -> None:
    contact = hs.post(f"{OBJECTS}/contacts", json=_contact(1), headers=INTEGRATION).json()
    hs.patch(
        f"{OBJECTS}/contacts/{contact['id']}",
        json={"properties": {"firstname": "Q"}},
        headers=OTHER,
    )
    hs.post(
        "/_sandbox/hubspot/edits",
        json={
            "op": "update",
            "object_type": "contacts",
            "id": contact["id"],
            "fields": {"lastname": "Z"},
        },
    )
    hs.delete(f"{OBJECTS}/contacts/{contact['id']}", headers=INTEGRATION)
    page = hs.get("/hubspot/_events", params={"limit": 3}, headers=INTEGRATION).json()
    assert [e["subscriptionType"] for e in page["results"]] == [
        "contact.creation",
        "contact.propertyChange",
        "contact.propertyChange",
    ]
    assert page["hasMore"] is True
    rest = hs.get("/hubspot/_events", params={"after": page["cursor"]}, headers=INTEGRATION).json()
    every = page["results"] + rest["results"]
    ids = [e["eventId"] for e in every]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    creation = every[0]
    assert creation["objectId"] == int(contact["id"]) and creation["changeFlag"] == "CREATED"
    assert (creation["changeSource"], creation["sourceId"]) == ("INTEGRATION", str(HUBSPOT_APP_ID))
    assert creation["portalId"] and creation["appId"] == HUBSPOT_APP_ID
    assert creation["attemptNumber"] == 0 and isinstance(creation["occurredAt"], int)
    changes = [
        (e["propertyName"], e["propertyValue"], e["changeSource"])
        for e in every
        if e["subscriptionType"] == "contact.propertyChange"
    ]
    assert changes[:2] == [
        ("email", "person1@example.com", "INTEGRATION"),
        ("firstname", "P1", "INTEGRATION"),
    ]
    other_app, person = every[3], every[4]
    assert other_app["propertyName"] == "firstname" and other_app["sourceId"] != str(HUBSPOT_APP_ID)
    assert (person["changeSource"], person["sourceId"].startswith("userId:")) == ("CRM_UI", True)
    assert every[-1]["subscriptionType"] == "contact.deletion" and not rest["hasMore"]


def test_an_update_that_changes_nothing_sends_no_event(hs: TestClient) -> None:
    contact = hs.post(f"{OBJECTS}/contacts", json=_contact(1), headers=INTEGRATION).json()
    before = hs.get("/hubspot/_events", headers=INTEGRATION).json()["cursor"]
    hs.patch(f"{OBJECTS}/contacts/{contact['id']}", json=_contact(1), headers=INTEGRATION)
    after = hs.get("/hubspot/_events", params={"after": before}, headers=INTEGRATION).json()
    assert after["results"] == [] and after["cursor"] == before
    writes = hs.get("/_sandbox/hubspot/writes", params={"id": contact["id"]}).json()["writes"]
    assert [(w["op"], w["changed"]) for w in writes] == [
        ("create", ["email", "firstname"]),
        ("update", []),
    ]


def test_listing_pages_through_every_object_by_id(hs: TestClient) -> None:
    inputs = [_contact(n) for n in range(23)]
    made = hs.post(f"{OBJECTS}/contacts/batch/create", json={"inputs": inputs}, headers=INTEGRATION)
    hs.delete(f"{OBJECTS}/contacts/{made.json()['results'][0]['id']}", headers=INTEGRATION)
    seen: list[str] = []
    params: dict[str, str] = {"limit": "10", "properties": "email"}
    while True:
        page = hs.get(f"{OBJECTS}/contacts", params=params, headers=INTEGRATION).json()
        seen += [r["id"] for r in page["results"]]
        if "paging" not in page:
            break
        params["after"] = page["paging"]["next"]["after"]
        assert page["paging"]["next"]["link"].startswith("http://sandbox.test/hubspot/")
    assert seen == sorted(seen, key=int) and len(seen) == 22
    assert set(page["results"][0]["properties"]) == {
        "email",
        "createdate",
        "lastmodifieddate",
        "hs_object_id",
    }
    archived = hs.get(
        f"{OBJECTS}/contacts", params={"archived": "true"}, headers=INTEGRATION
    ).json()
    assert [r["archived"] for r in archived["results"]] == [True]
