"""``/api/v1/crm/...`` against a real API process thread, PostgreSQL and the sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy

from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, DEFAULT_SALESFORCE_TOKEN, HUBSPOT_APP_ID
from sinks.principals.store import create_token
from synapseops.principals import Role
from synapseops.settings import Settings
from tests.integration.crm.world import LEAD_FIELDS, People, crm_world


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with crm_world(settings, database_url) as world:
        _, viewer = create_token(
            world["engine"], name="crm-viewer", roles=[Role.VIEWER], created_by="test"
        )
        world["viewer"] = httpx.Client(
            base_url=str(world["api"].base_url),
            headers={"Authorization": f"Bearer {viewer.token}"},
            timeout=30,
        )
        yield world


def _platform(world: dict[str, Any], kind: str, token: str, **extra: Any) -> httpx.Response:
    body = {
        "name": f"{kind[:2]}-{uuid.uuid4().hex[:8]}",
        "kind": kind,
        "base_url": f"{world['sandbox'].url}/{kind}",
        "own_origin": "synapseops" if kind == "salesforce" else str(HUBSPOT_APP_ID),
        "token": token,
        **extra,
    }
    api: httpx.Client = world["api"]
    return api.post("/api/v1/crm/platforms", json=body)


SPEC = {
    "salesforce_object": "Lead",
    "hubspot_object": "contacts",
    "match": {"salesforce": "Email", "hubspot": "email"},
    "fields": [
        *LEAD_FIELDS,
        {
            "salesforce": "NumberOfEmployees",
            "hubspot": "employees",
            "to_salesforce": ["to_int"],
        },
    ],
}


def test_a_platform_keeps_its_token_encrypted_and_never_shows_it(world: dict[str, Any]) -> None:
    answer = _platform(world, "salesforce", DEFAULT_SALESFORCE_TOKEN)
    assert answer.status_code == 201, answer.text
    assert answer.json()["token"] == "**hidden**"
    listed = world["api"].get("/api/v1/crm/platforms").text
    assert DEFAULT_SALESFORCE_TOKEN not in listed
    with world["engine"].connect() as conn:
        stored = conn.execute(sqlalchemy.text("SELECT * FROM crm_platforms")).mappings().all()
    assert all(
        DEFAULT_SALESFORCE_TOKEN.encode() not in bytes(r["credential_ciphertext"]) for r in stored
    )
    assert _platform(world, "salesforce", "short").status_code == 422
    refused = world["viewer"].post("/api/v1/crm/platforms", json={})
    assert refused.status_code == 403


def test_test_connection_says_whether_the_token_works(world: dict[str, Any]) -> None:
    good = _platform(world, "hubspot", DEFAULT_HUBSPOT_TOKEN).json()
    bad = _platform(world, "salesforce", "00D-not-a-known-token-but-long").json()
    revoked = httpx.put(
        f"{world['sandbox'].url}/_sandbox/salesforce/identities",
        json={"revoke_tokens": ["00D-not-a-known-token-but-long"]},
    )
    revoked.raise_for_status()
    ok = world["api"].post(f"/api/v1/crm/platforms/{good['id']}/test").json()
    assert ok["ok"] is True and ok["detail"]["rate_limit_max"] == "100"
    failed = world["api"].post(f"/api/v1/crm/platforms/{bad['id']}/test").json()
    assert failed["ok"] is False and "401" in failed["detail"]
    assert world["viewer"].post(f"/api/v1/crm/platforms/{good['id']}/test").status_code == 403


def _pair(world: dict[str, Any]) -> tuple[int, int]:
    sf = _platform(world, "salesforce", DEFAULT_SALESFORCE_TOKEN).json()
    hs = _platform(world, "hubspot", DEFAULT_HUBSPOT_TOKEN).json()
    return sf["id"], hs["id"]


def test_a_mapping_is_checked_on_write_and_gets_two_sync_states(world: dict[str, Any]) -> None:
    sf, hs = _pair(world)
    body = {
        "name": f"m-{uuid.uuid4().hex[:6]}",
        "salesforce_platform_id": sf,
        "hubspot_platform_id": hs,
    }
    broken = {
        **SPEC,
        "fields": [{"salesforce": "FirstName", "hubspot": "firstname", "to_hubspot": ["to_flaot"]}],
    }
    answer = world["api"].post("/api/v1/crm/mappings", json={**body, "spec": broken})
    assert answer.status_code == 422 and "to_flaot" in answer.text
    swapped = world["api"].post(
        "/api/v1/crm/mappings", json={**body, "salesforce_platform_id": hs, "spec": SPEC}
    )
    assert swapped.status_code == 422 and "not a Salesforce platform" in swapped.text
    made = world["api"].post("/api/v1/crm/mappings", json={**body, "spec": SPEC})
    assert made.status_code == 201, made.text
    states = world["api"].get(f"/api/v1/crm/mappings/{made.json()['id']}/sync-states").json()
    assert sorted(s["side"] for s in states) == ["hubspot", "salesforce"]
    assert all(s["cursor"] is None and s["written"] == 0 for s in states)
    assert world["api"].post("/api/v1/crm/mappings", json={**body, "spec": SPEC}).status_code == 409


def test_preview_maps_samples_each_way_and_names_a_broken_rule(world: dict[str, Any]) -> None:
    body = {
        "spec": SPEC,
        "salesforce": {
            "FirstName": "Ada",
            "LastName": "L",
            "Email": "a@x.io",
            "NumberOfEmployees": 5,
        },
        "hubspot": {"firstname": "Ada", "employees": "many"},
    }
    answer = world["viewer"].post("/api/v1/crm/mappings/preview", json=body)
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["to_hubspot"]["firstname"] == "Ada"
    assert preview["to_salesforce"] is None
    (error,) = preview["errors"]
    assert error["direction"] == "to_salesforce" and "to_int" in error["message"]


def test_preview_on_the_platforms_reads_a_sample_of_each(world: dict[str, Any]) -> None:
    sf, hs = _pair(world)
    people = People(world["sandbox"].url)
    people.edit(
        "salesforce",
        op="create",
        object_type="Lead",
        fields={"LastName": "Byron", "Company": "Poets", "Email": "b@x.io", "FirstName": "Ada"},
    )
    people.edit(
        "hubspot",
        op="create",
        object_type="contacts",
        fields={"email": "c@x.io", "firstname": "Mary"},
    )
    made = (
        world["api"]
        .post(
            "/api/v1/crm/mappings",
            json={
                "name": f"p-{uuid.uuid4().hex[:6]}",
                "salesforce_platform_id": sf,
                "hubspot_platform_id": hs,
                "spec": SPEC,
            },
        )
        .json()
    )
    preview = world["viewer"].post(f"/api/v1/crm/mappings/{made['id']}/preview").json()
    assert preview["to_hubspot"]["lastname"] == "Byron"
    assert preview["to_salesforce"]["FirstName"] == "Mary"


def test_records_and_conflicts_read_and_refuse_unknown_ids(world: dict[str, Any]) -> None:
    assert world["viewer"].get("/api/v1/crm/records").json() == []
    assert world["viewer"].get("/api/v1/crm/conflicts?status=all").json() == []
    missing = world["api"].post("/api/v1/crm/conflicts/999999/resolve", json={"choice": "hubspot"})
    assert missing.status_code == 404
    assert (
        world["api"].post("/api/v1/crm/conflicts/1/resolve", json={"choice": "zoho"}).status_code
        == 422
    )
    assert (
        world["viewer"]
        .post("/api/v1/crm/conflicts/1/resolve", json={"choice": "hubspot"})
        .status_code
        == 403
    )
