"""The sandbox's small SOQL: what a sync needs (changed since, full reads) and its paging."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sandbox.harness import app_client
from sandbox.identity import DEFAULT_SALESFORCE_TOKEN
from sandbox.salesforce_query import MalformedQuery, parse

INTEGRATION = {"Authorization": f"Bearer {DEFAULT_SALESFORCE_TOKEN}"}
API = "/salesforce/services/data/v60.0"


@pytest.fixture
def sf() -> Iterator[TestClient]:
    client = app_client()
    seeded = client.post("/_sandbox/crm/seed", json={"salesforce": {"Contact": 450}, "seed": 3})
    assert seeded.json()["counts"]["salesforce"]["Contact"] == 450
    yield client


def query(sf: TestClient, soql: str, **headers: str) -> dict[str, Any]:
    answer = sf.get(f"{API}/query", params={"q": soql}, headers={**INTEGRATION, **headers})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_full_read_pages_with_query_locators(sf: TestClient) -> None:
    first = query(sf, "SELECT Id, Email FROM Contact", **{"Sforce-Query-Options": "batchSize=200"})
    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    seen = [r["Id"] for r in first["records"]]
    url = first["nextRecordsUrl"]
    assert isinstance(url, str) and url.startswith("/services/data/v60.0/query/01g")
    while url:
        page = sf.get(
            f"/salesforce{url}", headers={**INTEGRATION, "Sforce-Query-Options": "batchSize=200"}
        ).json()
        seen += [r["Id"] for r in page["records"]]
        url = page.get("nextRecordsUrl")
    assert len(seen) == len(set(seen)) == 450
    record = first["records"][0]
    assert (
        set(record) == {"attributes", "Id", "Email"} and record["attributes"]["type"] == "Contact"
    )


def test_changed_since_sorted_by_modification_date(sf: TestClient) -> None:
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    ids = [r["Id"] for r in query(sf, "SELECT Id FROM Contact LIMIT 3")["records"]]
    for record_id in reversed(ids):
        sf.patch(f"{API}/sobjects/Contact/{record_id}", json={"Title": "CFO"}, headers=INTEGRATION)
    changed = query(
        sf,
        f"select id, title, LastModifiedDate from contact where LastModifiedDate >= {since} "
        "order by LastModifiedDate asc",
    )
    assert [r["Id"] for r in changed["records"]] == list(reversed(ids))
    assert all(r["Title"] == "CFO" for r in changed["records"])
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert query(sf, f"SELECT Id FROM Contact WHERE LastModifiedDate > {later}")["totalSize"] == 0


def test_filters_count_like_in_and_deleted_records(sf: TestClient) -> None:
    everyone = query(sf, "SELECT Id, Email, LeadSource FROM Contact")["records"]
    web = [r for r in everyone if r["LeadSource"] == "Web"]
    assert query(sf, "SELECT COUNT() FROM Contact WHERE LeadSource = 'web'")["totalSize"] == len(
        web
    )
    assert query(sf, "SELECT COUNT() FROM Contact WHERE LeadSource != 'Web'")[
        "totalSize"
    ] == 450 - len(web)
    domain = everyone[0]["Email"].split("@")[1]
    like = query(sf, f"SELECT Id FROM Contact WHERE Email LIKE '%@{domain}'")["totalSize"]
    assert 0 < like < 450
    some = [r["Id"] for r in everyone[:2]]
    inside = query(sf, f"SELECT Id FROM Contact WHERE Id IN ('{some[0]}', '{some[1]}')")
    assert sorted(r["Id"] for r in inside["records"]) == sorted(some)
    sf.delete(f"{API}/sobjects/Contact/{some[0]}", headers=INTEGRATION)
    assert query(sf, "SELECT COUNT() FROM Contact")["totalSize"] == 449
    every = sf.get(
        f"{API}/queryAll",
        params={"q": "SELECT Id, IsDeleted FROM Contact WHERE IsDeleted = true"},
        headers=INTEGRATION,
    )
    assert [r["Id"] for r in every.json()["records"]] == [some[0]]


@pytest.mark.parametrize(
    "soql",
    [
        "DELETE FROM Contact",
        "SELECT FROM Contact",
        "SELECT Id FROM Contact WHERE Email ~ 'x'",
        "SELECT Id FROM Contact WHERE Id IN 'x'",
        "SELECT Id FROM Contact GROUP BY Email",
    ],
)
def test_what_it_does_not_understand_is_a_malformed_query(sf: TestClient, soql: str) -> None:
    with pytest.raises(MalformedQuery):
        parse(soql)
    refused = sf.get(f"{API}/query", params={"q": soql}, headers=INTEGRATION)
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "MALFORMED_QUERY"
    stale = sf.get(f"{API}/query/01g5e9999999999-2000", headers=INTEGRATION)
    assert stale.status_code == 400 and stale.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
