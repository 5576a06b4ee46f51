"""The Salesforce shape in-process: ids, records, upserts, errors, limits, sObject collections."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sandbox.harness import app_client
from sandbox.identity import DEFAULT_SALESFORCE_TOKEN

INTEGRATION = {"Authorization": f"Bearer {DEFAULT_SALESFORCE_TOKEN}"}
OTHER = {"Authorization": "Bearer 00D000000000001!someone-else"}
API = "/salesforce/services/data/v60.0"
SOBJECTS = f"{API}/sobjects"
COLLECTIONS = f"{API}/composite/sobjects"


@pytest.fixture
def sf() -> Iterator[TestClient]:
    yield app_client()  # never `with`: that would run the lifespan and start SMTP


def _lead(**fields: Any) -> dict[str, Any]:
    return {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Wheelworks", **fields}


def test_ids_carry_the_key_prefix_of_their_object_and_records_their_system_fields(
    sf: TestClient,
) -> None:
    prefixes = {}
    for kind, body in (
        ("Lead", _lead()),
        ("Contact", {"LastName": "Norman"}),
        ("Opportunity", {"Name": "Fleet", "StageName": "Prospecting", "CloseDate": "2027-01-31"}),
    ):
        created = sf.post(f"{SOBJECTS}/{kind}", json=body, headers=INTEGRATION)
        assert created.status_code == 201
        assert created.json()["success"] is True and created.json()["errors"] == []
        prefixes[kind] = created.json()["id"]
    assert {k: v[:3] for k, v in prefixes.items()} == {
        "Lead": "00Q",
        "Contact": "003",
        "Opportunity": "006",
    }
    assert all(len(v) == 18 for v in prefixes.values())

    lead = sf.get(f"{SOBJECTS}/Lead/{prefixes['Lead']}", headers=INTEGRATION).json()
    # URLs are relative to the instance (here http://<sandbox>/salesforce), as on Salesforce.
    url = f"/services/data/v60.0/sobjects/Lead/{prefixes['Lead']}"
    assert lead["attributes"] == {"type": "Lead", "url": url}
    integration_user = lead["LastModifiedById"]
    assert integration_user.startswith("005") and lead["CreatedById"] == integration_user
    assert lead["LastModifiedDate"].endswith("+0000") and lead["SystemModstamp"]
    assert lead["IsDeleted"] is False

    sf.patch(f"{SOBJECTS}/Lead/{prefixes['Lead']}", json={"Title": "CFO"}, headers=OTHER)
    edited = sf.get(f"{SOBJECTS}/Lead/{prefixes['Lead'][:15]}", headers=INTEGRATION).json()
    assert edited["LastModifiedById"] not in (integration_user, "")
    assert edited["CreatedById"] == integration_user and edited["Title"] == "CFO"
    only = sf.get(
        f"{SOBJECTS}/Lead/{prefixes['Lead']}", params={"fields": "Title"}, headers=INTEGRATION
    ).json()
    assert set(only) == {"attributes", "Id", "Title"}


def test_upsert_by_external_id_creates_updates_and_reports_ambiguity(sf: TestClient) -> None:
    url = f"{SOBJECTS}/Contact/External_Id__c/hs-51001"
    new = sf.patch(url, json={"LastName": "Norman"}, headers=INTEGRATION)
    same = sf.patch(url, json={"Email": "bob@example.com"}, headers=INTEGRATION)
    assert (new.status_code, new.json()["created"]) == (201, True)
    assert (same.status_code, same.json()) == (
        200,
        {"id": new.json()["id"], "success": True, "errors": [], "created": False},
    )
    assert sf.get(url, headers=INTEGRATION).json()["Email"] == "bob@example.com"
    missing = sf.patch(
        f"{SOBJECTS}/Contact/External_Id__c/nope?updateOnly=true",
        json={"LastName": "x"},
        headers=INTEGRATION,
    )
    assert missing.status_code == 404
    for _ in range(2):
        sf.post(
            f"{SOBJECTS}/Contact", json={"LastName": "Twin", "Ext__c": "t"}, headers=INTEGRATION
        )
    twins = sf.patch(f"{SOBJECTS}/Contact/Ext__c/t", json={"Title": "x"}, headers=INTEGRATION)
    assert twins.status_code == 300 and len(twins.json()) == 2


def test_delete_then_the_record_is_gone_and_listed_as_deleted(sf: TestClient) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    record_id = sf.post(f"{SOBJECTS}/Contact", json={"LastName": "N"}, headers=INTEGRATION).json()[
        "id"
    ]
    assert sf.delete(f"{SOBJECTS}/Contact/{record_id}", headers=INTEGRATION).status_code == 204
    again = sf.delete(f"{SOBJECTS}/Contact/{record_id}", headers=INTEGRATION)
    assert again.status_code == 404 and again.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert sf.get(f"{SOBJECTS}/Contact/{record_id}", headers=INTEGRATION).status_code == 404
    window = {
        "start": before.isoformat(),
        "end": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    }
    gone = sf.get(f"{SOBJECTS}/Contact/deleted/", params=window, headers=INTEGRATION).json()
    assert [d["id"] for d in gone["deletedRecords"]] == [record_id]
    changed = sf.get(f"{SOBJECTS}/Contact/updated/", params=window, headers=INTEGRATION).json()
    assert changed["ids"] == []  # a deleted record is no longer "updated"


@pytest.mark.parametrize(
    ("kind", "body", "code", "fields"),
    [
        ("Lead", _lead(Email="not-an-email"), "INVALID_EMAIL_ADDRESS", ["Email"]),
        ("Lead", _lead(LastName="x" * 81), "STRING_TOO_LONG", ["LastName"]),
        ("Lead", {"LastName": "Only"}, "REQUIRED_FIELD_MISSING", ["Company"]),
        (
            "Contact",
            {"LastName": "N", "CreatedDate": "x"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["CreatedDate"],
        ),
        ("Contact", {"LastName": {"first": "x"}}, "JSON_PARSER_ERROR", ["LastName"]),
    ],
)
def test_refused_records_say_why_the_way_salesforce_does(
    sf: TestClient, kind: str, body: dict[str, Any], code: str, fields: list[str]
) -> None:
    refused = sf.post(f"{SOBJECTS}/{kind}", json=body, headers=INTEGRATION)
    assert refused.status_code == 400
    (error,) = refused.json()
    assert (error["errorCode"], error["fields"]) == (code, fields) and error["message"]


def test_an_update_may_not_blank_a_required_field(sf: TestClient) -> None:
    record_id = sf.post(f"{SOBJECTS}/Lead", json=_lead(), headers=INTEGRATION).json()["id"]
    blank = sf.patch(f"{SOBJECTS}/Lead/{record_id}", json={"Company": ""}, headers=INTEGRATION)
    assert blank.status_code == 400 and blank.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_sessions_and_the_daily_request_limit(sf: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        denied = sf.post(f"{SOBJECTS}/Lead", json=_lead(), headers=headers)
        assert denied.status_code == 401
        assert denied.json() == [
            {
                "message": "Session expired or invalid",
                "errorCode": "INVALID_SESSION_ID",
                "fields": [],
            }
        ]
    sf.put("/_sandbox/salesforce/identities", json={"revoke_tokens": [DEFAULT_SALESFORCE_TOKEN]})
    assert sf.get(f"{API}/limits", headers=INTEGRATION).status_code == 401
    sf.put("/_sandbox/salesforce/identities", json={"restore_tokens": [DEFAULT_SALESFORCE_TOKEN]})

    sf.put("/_sandbox/limits", json={"salesforce": {"daily_requests": 3}})
    answers = [sf.post(f"{SOBJECTS}/Lead", json=_lead(), headers=INTEGRATION) for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 403]
    assert [a.headers["Sforce-Limit-Info"] for a in answers[:3]] == [
        "api-usage=1/3",
        "api-usage=2/3",
        "api-usage=3/3",
    ]
    assert answers[3].json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    # The change feed is not an API request: it still answers.
    assert sf.get("/salesforce/_changes", headers=INTEGRATION).status_code == 200
    sf.put("/_sandbox/limits", json={"salesforce": {"enabled": False}})
    assert sf.post(f"{SOBJECTS}/Lead", json=_lead(), headers=INTEGRATION).status_code == 201


def _records(*bodies: dict[str, Any], kind: str = "Lead") -> list[dict[str, Any]]:
    return [{"attributes": {"type": kind}, **b} for b in bodies]


def test_collection_create_answers_each_record_and_one_refusal_fails_only_itself(
    sf: TestClient,
) -> None:
    body = {
        "allOrNone": False,
        "records": _records(_lead(), _lead(Email="bad"), _lead(LastName="Two"))
        + [{"LastName": "no type"}],
    }
    results = sf.post(COLLECTIONS, json=body, headers=INTEGRATION).json()
    assert [r["success"] for r in results] == [True, False, True, False]
    assert results[1]["errors"] == [
        {
            "statusCode": "INVALID_EMAIL_ADDRESS",
            "message": "Email: invalid email address: bad",
            "fields": ["Email"],
        }
    ]
    assert results[3]["errors"][0]["statusCode"] == "INVALID_TYPE"
    assert results[0]["id"].startswith("00Q") and "id" not in results[1]
    count = sf.get(f"{API}/query", params={"q": "SELECT COUNT() FROM Lead"}, headers=INTEGRATION)
    assert count.json()["totalSize"] == 2


def test_all_or_none_rolls_every_record_back(sf: TestClient) -> None:
    body = {"allOrNone": True, "records": _records(_lead(), {"LastName": "no company"})}
    results = sf.post(COLLECTIONS, json=body, headers=INTEGRATION).json()
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.get("/_sandbox/salesforce/writes").json()["writes"] == []


def test_collections_take_at_most_200_records(sf: TestClient) -> None:
    body = {"records": _records(*[_lead() for _ in range(201)])}
    refused = sf.post(COLLECTIONS, json=body, headers=INTEGRATION)
    assert refused.status_code == 400
    assert refused.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    ok = sf.post(COLLECTIONS, json={"records": body["records"][:200]}, headers=INTEGRATION)
    assert ok.status_code == 200 and all(r["success"] for r in ok.json())


def test_collection_update_delete_read_and_upsert(sf: TestClient) -> None:
    made = sf.post(COLLECTIONS, json={"records": _records(_lead(), _lead())}, headers=INTEGRATION)
    first, second = (r["id"] for r in made.json())
    update = {
        "records": _records(
            {"id": first, "Title": "CFO"}, {"id": "00Q000000000000AAA", "Title": "x"}
        )
    }
    updated = sf.patch(COLLECTIONS, json=update, headers=INTEGRATION).json()
    assert updated[0] == {"id": first, "success": True, "errors": []}
    assert updated[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"

    read = sf.get(
        f"{COLLECTIONS}/Lead",
        params={"ids": f"{first},{second}", "fields": "Title"},
        headers=INTEGRATION,
    ).json()
    assert [r["Title"] for r in read] == ["CFO", None]

    deleted = sf.delete(COLLECTIONS, params={"ids": second}, headers=INTEGRATION)
    again = sf.delete(COLLECTIONS, params={"ids": f"{second},nonsense"}, headers=INTEGRATION)
    assert deleted.json() == [{"id": second, "success": True, "errors": []}]
    assert [e["errors"][0]["statusCode"] for e in again.json()] == [
        "ENTITY_IS_DELETED",
        "INVALID_CROSS_REFERENCE_KEY",
    ]

    upsert = {
        "allOrNone": False,
        "records": _records(
            {"Email": "a@example.com", "LastName": "A"},
            {"Email": "b@example.com", "LastName": "B"},
            {"Email": "b@example.com", "LastName": "B again"},
            kind="Contact",
        ),
    }
    first_pass = sf.patch(f"{COLLECTIONS}/Contact/Email", json=upsert, headers=INTEGRATION).json()
    assert [r.get("created") for r in first_pass] == [True, None, None]
    assert first_pass[1]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"
    upsert["records"] = upsert["records"][:2]
    second_pass = sf.patch(f"{COLLECTIONS}/Contact/Email", json=upsert, headers=INTEGRATION).json()
    assert [r["created"] for r in second_pass] == [False, True]
    assert second_pass[0]["id"] == first_pass[0]["id"]
