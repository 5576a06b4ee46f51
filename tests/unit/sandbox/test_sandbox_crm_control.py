"""The CRM control plane: bulk seed, edits behind the service's back, the writes log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sandbox.harness import app_client
from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, DEFAULT_SALESFORCE_TOKEN
from sandbox.samples import load

SF = {"Authorization": f"Bearer {DEFAULT_SALESFORCE_TOKEN}"}
HS = {"Authorization": f"Bearer {DEFAULT_HUBSPOT_TOKEN}"}
SOBJECTS = "/salesforce/services/data/v60.0/sobjects"


@pytest.fixture
def crm() -> Iterator[TestClient]:
    yield app_client()


def test_seed_5000_people_across_both_sides_with_shared_emails(crm: TestClient) -> None:
    body = {
        "salesforce": {"Contact": 2000, "Lead": 500, "Opportunity": 20},
        "hubspot": {"contacts": 2500, "deals": 10},
        "shared": 1000,
        "seed": 7,
    }
    seeded = crm.post("/_sandbox/crm/seed", json=body).json()
    assert seeded["counts"] == {
        "salesforce": {"Contact": 2000, "Lead": 500, "Opportunity": 20},
        "hubspot": {"contacts": 2500, "deals": 10},
    }
    sf = crm.get("/_sandbox/salesforce/records", params={"object_type": "Contact"}).json()
    leads = crm.get("/_sandbox/salesforce/records", params={"object_type": "Lead"}).json()
    hs = crm.get("/_sandbox/hubspot/records", params={"object_type": "contacts"}).json()
    sf_emails = {r["Email"] for r in sf["records"] + leads["records"]}
    hs_emails = {r["properties"]["email"] for r in hs["records"]}
    assert len(sf_emails) == 2500 and len(hs_emails) == 2500
    assert len(sf_emails & hs_emails) == 1000  # the shared people
    # The companies come from the ebikes sample accounts (and more of the same shape).
    sample_names = {a["Name"] for a in load("crm/ebikes/Accounts.json")["records"]}
    assert sample_names <= {r["Company"] for r in leads["records"]}
    # A shared person carries the same values on both sides.
    by_email = {r["properties"]["email"]: r["properties"] for r in hs["records"]}
    person = next(r for r in sf["records"] if r["Email"] in by_email)
    other = by_email[person["Email"]]
    assert (person["FirstName"], person["LastName"], person["LeadSource"]) == (
        other["firstname"],
        other["lastname"],
        other["hs_lead_source"],
    )
    # Seeded as if from before the feeds: no change events, no writes.
    assert crm.get("/salesforce/_changes", headers=SF).json()["changes"] == []
    assert crm.get("/_sandbox/hubspot/writes").json()["writes"] == []
    again = crm.post("/_sandbox/crm/seed", json={"hubspot": {"contacts": 5}, "seed": 7}).json()
    assert len(set(again["ids"]["hubspot"]["contacts"]) & {r["id"] for r in hs["records"]}) == 0


def test_seeding_as_an_import_emits_changes(crm: TestClient) -> None:
    crm.post("/_sandbox/crm/seed", json={"hubspot": {"contacts": 3}, "emit_changes": True})
    events = crm.get("/hubspot/_events", headers=HS).json()["results"]
    assert {e["changeSource"] for e in events} == {"IMPORT"}


def test_edits_behind_the_services_back_are_a_persons_and_counted_per_record(
    crm: TestClient,
) -> None:
    record_id = crm.post(f"{SOBJECTS}/Contact", json={"LastName": "Norman"}, headers=SF).json()[
        "id"
    ]
    crm.patch(f"{SOBJECTS}/Contact/{record_id}", json={"Title": "Buyer"}, headers=SF)
    edited = crm.post(
        "/_sandbox/salesforce/edits",
        json={
            "op": "update",
            "object_type": "Contact",
            "id": record_id,
            "fields": {"Title": "CFO"},
        },
    )
    assert edited.json() == {"op": "update", "id": record_id}
    record = crm.get(f"{SOBJECTS}/Contact/{record_id}", headers=SF).json()
    assert record["Title"] == "CFO" and record["LastModifiedById"] != record["CreatedById"]

    writes = crm.get("/_sandbox/salesforce/writes", params={"id": record_id}).json()["writes"]
    assert [(w["actor"], w["op"], w["changed"]) for w in writes] == [
        ("integration", "create", ["LastName"]),
        ("integration", "update", ["Title"]),
        ("human", "update", ["Title"]),
    ]
    by_integration = crm.get("/_sandbox/salesforce/writes", params={"actor": "integration"}).json()
    assert len(by_integration["writes"]) == 2 and by_integration["last_seq"] == 2
    assert writes[0]["method"] == "POST" and writes[0]["request_seq"] is not None
    attempts = crm.get("/_sandbox/salesforce/attempts").json()
    assert writes[0]["request_seq"] in {a["seq"] for a in attempts}
    later = crm.get("/_sandbox/salesforce/writes", params={"since": 2}).json()["writes"]
    assert [w["actor"] for w in later] == ["human"]

    refused = crm.post(
        "/_sandbox/salesforce/edits",
        json={
            "op": "update",
            "object_type": "Contact",
            "id": record_id,
            "fields": {"LastName": ""},
        },
    )
    assert refused.status_code == 422
    missing = crm.post(
        "/_sandbox/hubspot/edits", json={"op": "delete", "object_type": "contacts", "id": "1"}
    )
    assert missing.status_code == 404


def test_drift_changes_random_records_as_a_person(crm: TestClient) -> None:
    crm.post("/_sandbox/crm/seed", json={"hubspot": {"contacts": 50}})
    drift = {"platform": "hubspot", "object_type": "contacts", "count": 7, "seed": 3}
    edited = crm.post("/_sandbox/crm/drift", json=drift).json()["edited"]
    assert len({e["id"] for e in edited}) == 7 and {e["field"] for e in edited} == {"jobtitle"}
    writes = crm.get("/_sandbox/hubspot/writes").json()["writes"]
    assert Counter(w["actor"] for w in writes) == {"human": 7}
    record = crm.get(
        f"/hubspot/crm/v3/objects/contacts/{edited[0]['id']}",
        params={"properties": "jobtitle"},
        headers=HS,
    ).json()
    assert record["properties"]["jobtitle"] == edited[0]["value"]
    created = crm.post("/_sandbox/crm/drift", json={**drift, "op": "create", "count": 2}).json()
    deleted = crm.post("/_sandbox/crm/drift", json={**drift, "op": "delete", "count": 2}).json()
    assert [e["op"] for e in created["edited"] + deleted["edited"]] == ["create"] * 2 + [
        "delete"
    ] * 2
    count = crm.get("/_sandbox/hubspot/records", params={"object_type": "contacts"}).json()["count"]
    assert count == 50


def test_identities_name_the_integration_and_tokens_can_be_added(crm: TestClient) -> None:
    known = crm.get("/_sandbox/crm/identities").json()
    assert known["salesforce"]["integration_tokens"] == [DEFAULT_SALESFORCE_TOKEN]
    assert known["hubspot"]["portal_id"] and known["hubspot"]["integration"]["app_id"]
    crm.put("/_sandbox/salesforce/identities", json={"add_tokens": ["my-service-token"]})
    made = crm.post(
        f"{SOBJECTS}/Contact",
        json={"LastName": "N"},
        headers={"Authorization": "Bearer my-service-token"},
    )
    record = crm.get(f"{SOBJECTS}/Contact/{made.json()['id']}", headers=SF).json()
    assert record["CreatedById"] == known["salesforce"]["integration"]["user_id"]
    assert crm.post("/_sandbox/reset").status_code == 200
    assert crm.get("/_sandbox/crm/identities").json()["salesforce"]["integration_tokens"] == [
        DEFAULT_SALESFORCE_TOKEN
    ]
