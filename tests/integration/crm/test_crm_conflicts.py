"""Both sides edited between two syncs: each field's policy decides, a ``manual`` field is held
(with a ``sync_conflict`` trigger) until a person picks a side; a worker killed with
``kill -9`` resumes from its cursors without losing or repeating a change."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from schemas.serde import AvroSerde
from schemas.store import schema_store
from sinks.crm.tables import crm_conflicts, crm_links
from synapseops.kafka import consumer_config
from synapseops.settings import Settings
from tests.integration.crm.world import (
    People,
    synced_pair,
    wait_for,
)
from tests.integration.worker_process import WorkerProcess
from topics.registry import NOTIFICATION_TRIGGERS


@pytest.fixture(scope="module")
def world(
    settings: Settings, kafka_bootstrap: str, database_url: str, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("crm-conflicts")
    with synced_pair(settings, database_url, kafka_bootstrap, data_dir, "conflicts") as world:
        yield world


def _link(world: dict[str, Any], email: str) -> dict[str, Any] | None:
    with world["engine"].connect() as conn:
        row = (
            conn.execute(sqlalchemy.select(crm_links).where(crm_links.c.match_value == email))
            .mappings()
            .one_or_none()
        )
    return dict(row) if row else None


def _conflicts(world: dict[str, Any], link_id: int) -> list[dict[str, Any]]:
    with world["engine"].connect() as conn:
        rows = conn.execute(
            sqlalchemy.select(crm_conflicts).where(crm_conflicts.c.link_id == link_id)
        ).mappings()
        return [dict(r) for r in rows]


def _trigger_offsets(settings: Settings) -> dict[int, int]:
    consumer = Consumer(consumer_config(settings.kafka, f"t-crm-{uuid.uuid4().hex[:8]}"))
    try:
        return {
            p: consumer.get_watermark_offsets(
                TopicPartition(NOTIFICATION_TRIGGERS.name, p), timeout=10
            )[1]
            for p in range(NOTIFICATION_TRIGGERS.partitions)
        }
    finally:
        consumer.close()


def _triggers(settings: Settings, since: dict[int, int], dedup_key: str) -> list[dict[str, Any]]:
    serde = AvroSerde(schema_store(), NOTIFICATION_TRIGGERS.value_schema)
    consumer = Consumer(consumer_config(settings.kafka, f"t-crm-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(NOTIFICATION_TRIGGERS.name, p, o) for p, o in since.items()])
    found, deadline = [], time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() or message.value() is None:
                continue
            trigger = serde.decode(message.value())  # type: ignore[arg-type]
            if trigger.get("dedup_key") == dedup_key:
                found.append(trigger)
    finally:
        consumer.close()
    return found


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def _api_gauge(world: dict[str, Any], mapping: str) -> float | None:
    text = world["api"].get("/metrics").text
    return _sample(text, "synapseops_crm_conflicts_open", mapping=mapping)


def test_both_sides_edited_each_field_by_its_policy(world: dict[str, Any]) -> None:
    people: People = world["people"]
    worker: WorkerProcess = world["worker"]
    email = f"grace.{uuid.uuid4().hex[:8]}@example.com"
    lead = {
        "FirstName": "Grace",
        "LastName": "Hopper",
        "Email": email,
        "Company": "Navy",
        "Title": "Officer",
        "Phone": "1",
    }
    people.edit("salesforce", op="create", object_type="Lead", fields=lead)
    link = wait_for(lambda: _link(world, email), what="the link")
    since = _trigger_offsets(world["settings"])

    worker.stop()  # between two syncs, a person edits each side
    people.edit(
        "salesforce",
        op="update",
        object_type="Lead",
        id=link["salesforce_id"],
        fields={"FirstName": "Sf", "Title": "CEO", "Phone": "2"},
    )
    time.sleep(0.01)  # HubSpot's save is the later one
    people.edit(
        "hubspot",
        op="update",
        object_type="contacts",
        id=link["hubspot_id"],
        fields={"firstname": "Hs", "jobtitle": "CTO", "phone": "3"},
    )
    worker.start()
    worker.wait_healthy()

    conflicts = wait_for(lambda: _conflicts(world, link["id"]), what="the held Title")
    wait_for(
        lambda: people.by_email("salesforce", "Lead")[email]["FirstName"] == "Hs",
        what="last writer (HubSpot) wins FirstName",
    )
    sf, hs = (
        people.by_email("salesforce", "Lead")[email],
        people.by_email("hubspot", "contacts")[email],
    )
    assert (sf["FirstName"], hs["firstname"]) == ("Hs", "Hs")
    assert (sf["Title"], hs["jobtitle"]) == ("CEO", "CTO")  # manual: held, nobody overwritten
    assert (sf["Phone"], hs["phone"]) == ("2", "3")  # fill_if_empty: both set, both kept
    assert [
        (c["field"], c["salesforce_value"], c["hubspot_value"], c["status"]) for c in conflicts
    ] == [("Title", "CEO", "CTO", "open")]
    mapping = str(world["mapping_id"])
    wait_for(lambda: _api_gauge(world, mapping) == 1.0, what="1 conflict open on /metrics")
    (trigger,) = _triggers(world["settings"], since, f"sync_conflict:{conflicts[0]['id']}")
    assert trigger["kind"] == "sync_conflict"
    assert trigger["details"]["field"] == "Title"

    # A person picks HubSpot's value: it is written to Salesforce and the conflict closes.
    answer = world["api"].post(
        f"/api/v1/crm/conflicts/{conflicts[0]['id']}/resolve", json={"choice": "hubspot"}
    )
    assert answer.status_code == 202, answer.text
    again = world["api"].post(
        f"/api/v1/crm/conflicts/{conflicts[0]['id']}/resolve", json={"choice": "salesforce"}
    )
    assert again.status_code == 409  # one choice per conflict
    wait_for(lambda: _conflicts(world, link["id"])[0]["status"] == "resolved", what="resolved")
    wait_for(lambda: _api_gauge(world, mapping) == 0.0, what="no conflict open on /metrics")
    assert people.by_email("salesforce", "Lead")[email]["Title"] == "CTO"
    title_writes = [
        w
        for w in people.writes("salesforce")
        if w["id"] == link["salesforce_id"] and "Title" in w["fields"]
    ]
    assert [w["fields"]["Title"] for w in title_writes] == ["CTO"]


def test_a_worker_killed_twice_loses_and_repeats_no_change(world: dict[str, Any]) -> None:
    people: People = world["people"]
    worker: WorkerProcess = world["worker"]
    emails = [f"kill.{i}.{uuid.uuid4().hex[:6]}@example.com" for i in range(60)]
    for round_ in range(2):
        for email in emails[round_ * 30 : round_ * 30 + 30]:
            fields = {"LastName": "Kill", "Company": "Nine", "Email": email, "FirstName": "K"}
            people.edit("salesforce", op="create", object_type="Lead", fields=fields)
        time.sleep(0.5)
        worker.kill_9()
        worker.start()
        worker.wait_healthy()
    wait_for(
        lambda: set(emails) <= set(people.by_email("hubspot", "contacts")),
        within_s=90,
        what="every Lead on HubSpot",
    )
    time.sleep(3)  # anything left to (wrongly) repeat would show now
    ids = {
        r["id"]: str(r["properties"]["email"])
        for r in people.records("hubspot", "contacts")
        if r["properties"].get("email") in emails
    }
    creates = [w for w in people.writes("hubspot") if w["id"] in ids]
    assert sorted(ids[w["id"]] for w in creates) == sorted(emails)  # each written exactly once
    assert not [w for w in people.writes("salesforce") if w["fields"].get("Email") in emails]


def test_the_workers_metrics_count_changes_per_mapping_and_direction(world: dict[str, Any]) -> None:
    """Changes read, written and skipped per mapping (the pair) and direction, and the sync lag,
    on the worker's real /metrics."""
    people: People = world["people"]
    worker: WorkerProcess = world["worker"]
    mapping = str(world["mapping_id"])
    email = f"metrics.{uuid.uuid4().hex[:8]}@example.com"
    fields = {"email": email, "firstname": "Mia", "lastname": "Metrics", "company": "Gauge"}
    made = people.edit("hubspot", op="create", object_type="contacts", fields=fields)
    wait_for(lambda: _link(world, email), what="the link")
    link = _link(world, email)
    assert link is not None and link["hubspot_id"] == made["id"]
    # a Lead without an e-mail cannot be matched or created on HubSpot: skipped, with a reason
    people.edit(
        "salesforce",
        op="create",
        object_type="Lead",
        fields={"LastName": "Nomail", "Company": "Gauge"},
    )
    people.edit(
        "salesforce",
        op="update",
        object_type="Lead",
        id=link["salesforce_id"],
        fields={"LastName": "Metered"},
    )
    wait_for(
        lambda: people.by_email("hubspot", "contacts")[email]["lastname"] == "Metered",
        what="the Salesforce edit on HubSpot",
    )

    def counted() -> dict[str, float | None] | None:
        text = worker.metrics()
        found: dict[str, float | None] = {
            f"{way} {outcome}": _sample(
                text,
                "synapseops_crm_changes_total",
                mapping=mapping,
                direction=way,
                outcome=outcome,
            )
            for way in ("hubspot_to_salesforce", "salesforce_to_hubspot")
            for outcome in ("read", "written", "skipped")
        }
        found["lag"] = _sample(
            text, "synapseops_crm_sync_lag_seconds_count", direction="salesforce_to_hubspot"
        )
        wanted = ("hubspot_to_salesforce read", "hubspot_to_salesforce written", "lag")
        return (
            found if all(found[k] for k in wanted) and found["salesforce_to_hubspot read"] else None
        )

    found = wait_for(counted, what="the CRM counters on the worker's /metrics")
    assert (found["salesforce_to_hubspot read"] or 0) >= 2
    assert (found["salesforce_to_hubspot written"] or 0) + (
        found["salesforce_to_hubspot skipped"] or 0
    ) >= 2
