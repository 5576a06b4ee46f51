"""The CRM sync end to end: a real worker process, Kafka, PostgreSQL and the sandbox's
Salesforce and HubSpot over HTTP. People edit either side through the sandbox; the tests read
both sides and the sandbox's log of writes (who wrote what, one entry per record written).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy

from sinks.crm.tables import crm_links, crm_sync_states
from synapseops.settings import Settings
from tests.integration.crm.world import (
    People,
    synced_pair,
    wait_for,
)


@pytest.fixture(scope="module")
def world(
    settings: Settings, kafka_bootstrap: str, database_url: str, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("crm-worker")
    with synced_pair(settings, database_url, kafka_bootstrap, data_dir, "leads") as world:
        yield world


def _email() -> str:
    return f"ada.{uuid.uuid4().hex[:8]}@example.com"


def _lead(email: str, **extra: Any) -> dict[str, Any]:
    return {
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Email": email,
        "Company": "Analytical Engines",
        "LeadSource": "Web",
        **extra,
    }


def _written(people: People, platform: str, email: str) -> list[dict[str, Any]]:
    """The integration's writes on ``platform`` to the record with ``email``."""
    records = {
        r["Id"] if platform == "salesforce" else r["id"]: r
        for r in people.http.get(
            f"/_sandbox/{platform}/records",
            params={"object_type": "Lead" if platform == "salesforce" else "contacts"},
        ).json()["records"]
    }
    ids = {
        record_id
        for record_id, r in records.items()
        if str(r.get("Email") or r.get("properties", {}).get("email")).lower() == email
    }
    return [w for w in people.writes(platform) if w["id"] in ids]


def test_a_lead_made_on_salesforce_appears_on_hubspot_once(world: dict[str, Any]) -> None:
    people: People = world["people"]
    email = _email()
    people.edit("salesforce", op="create", object_type="Lead", fields=_lead(email))
    contact = wait_for(
        lambda: people.by_email("hubspot", "contacts").get(email), what="the HubSpot contact"
    )
    assert (contact["firstname"], contact["lastname"], contact["company"]) == (
        "Ada",
        "Lovelace",
        "Analytical Engines",
    )
    assert contact["hs_lead_source"] == "Web"
    # The contact's own creation came back as HubSpot events: dropped by origin, never echoed.
    wait_for(lambda: _link(world, email), what="the link")
    assert [w["op"] for w in _written(people, "hubspot", email)] == ["create"]
    assert _written(people, "salesforce", email) == []


def _link(world: dict[str, Any], email: str) -> dict[str, Any] | None:
    with world["engine"].connect() as conn:
        row = (
            conn.execute(sqlalchemy.select(crm_links).where(crm_links.c.match_value == email))
            .mappings()
            .one_or_none()
        )
    return dict(row) if row else None


def test_an_edit_on_hubspot_travels_back_once_and_does_not_bounce(world: dict[str, Any]) -> None:
    people: People = world["people"]
    email = _email()
    people.edit("salesforce", op="create", object_type="Lead", fields=_lead(email))
    link = wait_for(lambda: _link(world, email), what="the link")
    people.edit(
        "hubspot",
        op="update",
        object_type="contacts",
        id=link["hubspot_id"],
        fields={"firstname": "Augusta"},
    )
    wait_for(
        lambda: people.by_email("salesforce", "Lead")[email]["FirstName"] == "Augusta",
        what="FirstName on Salesforce",
    )
    wait_for(
        lambda: (_link(world, email) or {}).get("hubspot_watermark", -1) > -1,
        what="the HubSpot change recorded",
    )
    sf_writes = _written(people, "salesforce", email)
    assert [(w["op"], w["fields"]) for w in sf_writes] == [("update", {"FirstName": "Augusta"})]
    assert [w["op"] for w in _written(people, "hubspot", email)] == ["create"]  # no bounce


def test_a_delete_travels_as_a_tombstone(world: dict[str, Any]) -> None:
    people: People = world["people"]
    email = _email()
    people.edit("salesforce", op="create", object_type="Lead", fields=_lead(email))
    link = wait_for(lambda: _link(world, email), what="the link")
    people.edit("salesforce", op="delete", object_type="Lead", id=link["salesforce_id"])
    wait_for(
        lambda: email not in people.by_email("hubspot", "contacts"), what="the contact archived"
    )
    assert (_link(world, email) or {})["deleted_at"] is not None


def test_a_refused_record_gets_its_own_dead_letter(world: dict[str, Any]) -> None:
    """A HubSpot contact without a company cannot be a Salesforce Lead (Company is required):
    that record alone is dead-lettered with Salesforce's reason; the others of its batch sync."""
    people: People = world["people"]
    good = [_email() for _ in range(3)]
    bad = _email()
    for email in [good[0], bad, *good[1:]]:
        fields = {"firstname": "Grace", "lastname": "Hopper", "email": email}
        if email != bad:
            fields["company"] = "Navy"
        people.edit("hubspot", op="create", object_type="contacts", fields=fields)
    wait_for(
        lambda: all(e in people.by_email("salesforce", "Lead") for e in good),
        what="the good contacts as Leads",
    )
    dead = wait_for(lambda: _dead_letters(world), what="the dead letter")
    assert len(dead) == 1
    assert "REQUIRED_FIELD_MISSING" in dead[0]["error_message"]
    assert bad not in people.by_email("salesforce", "Lead")


def _dead_letters(world: dict[str, Any]) -> list[dict[str, Any]]:
    """This world's dead letters (crm-sync.dlq is the session's: earlier tests' are there too)."""
    query = sqlalchemy.text("SELECT * FROM dead_letters WHERE pipeline = 'crm-sync'")
    with world["engine"].connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    return [r for r in rows if json.loads(bytes(r["value"]))["mapping_id"] == world["mapping_id"]]


def test_writes_go_in_batches_within_the_platforms_limits(world: dict[str, Any]) -> None:
    people: People = world["people"]
    answer = people.http.post(
        "/_sandbox/crm/seed",
        json={"salesforce": {"Lead": 250}, "seed": 7, "emit_changes": True},
    )
    answer.raise_for_status()
    emails = {
        str(r["Email"]).lower()
        for r in people.records("salesforce", "Lead")
        if r["Id"] in set(answer.json()["ids"]["salesforce"]["Lead"])
    }
    wait_for(
        lambda: emails <= set(people.by_email("hubspot", "contacts")),
        within_s=120,
        what="250 seeded Leads on HubSpot",
    )
    writes = [w for w in people.writes("hubspot") if w["fields"].get("email") in emails]
    per_call = Counter(w["request_seq"] for w in writes)
    assert len(writes) == 250
    assert max(per_call.values()) <= 100
    assert len(per_call) < 250 / 2  # batched, not one call per record


def test_sync_states_count_what_happened(world: dict[str, Any]) -> None:
    with world["engine"].connect() as conn:
        states = {
            r["side"]: dict(r)
            for r in conn.execute(
                sqlalchemy.select(crm_sync_states).where(
                    crm_sync_states.c.mapping_id == world["mapping_id"]
                )
            ).mappings()
        }
    assert states["salesforce"]["cursor"] is not None and states["hubspot"]["cursor"] is not None
    assert states["salesforce"]["written"] > 0 and states["hubspot"]["written"] > 0
    assert states["hubspot"]["own_skipped"] > 0  # our own HubSpot writes, dropped by origin
    assert states["hubspot"]["failed"] >= 1  # the refused contact
