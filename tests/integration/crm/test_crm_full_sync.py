"""Manual full sync: the dry run's diff, the run reconciling by match key and hash with
progress, and drift injected behind the service's back reconciled exactly — through the API,
the ``synapseops crm sync`` command, a worker and the sandbox."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy

from sandbox.identity import DEFAULT_HUBSPOT_TOKEN, DEFAULT_SALESFORCE_TOKEN
from sinks.crm.tables import crm_sync_states
from synapseops.settings import Settings
from tests.integration.crm.world import (
    People,
    crm_worker,
    crm_world,
    lead_spec,
    make_pair,
    wait_for,
)
from tests.integration.worker_process import CLI, WorkerProcess


@pytest.fixture(scope="module")
def world(
    settings: Settings, kafka_bootstrap: str, database_url: str, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    with crm_world(settings, database_url) as world:
        people = People(world["sandbox"].url)
        seeded = people.http.post(
            "/_sandbox/crm/seed",
            json={"salesforce": {"Lead": 40}, "hubspot": {"contacts": 40}, "shared": 20, "seed": 3},
        )
        seeded.raise_for_status()
        world["mapping_id"] = make_pair(world, lead_spec(), f"full-{uuid.uuid4().hex[:6]}")
        with crm_worker(world, kafka_bootstrap, tmp_path_factory.mktemp("crm-full")) as worker:
            world["worker"], world["people"] = worker, people
            yield world


def _full_sync(world: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    api: httpx.Client = world["api"]
    started = api.post(
        f"/api/v1/crm/mappings/{world['mapping_id']}/full-syncs", json={"dry_run": dry_run}
    )
    assert started.status_code == 202, started.text

    def finished() -> dict[str, Any] | None:
        row = dict(api.get(f"/api/v1/crm/full-syncs/{started.json()['id']}").json())
        return row if row["status"] in ("done", "failed", "cancelled") else None

    return dict(wait_for(finished, within_s=90, what="the full sync"))


def _cli_sync(world: dict[str, Any]) -> str:
    env = {**os.environ, "SYNAPSEOPS_DATABASE_URL": world["settings"].database_url}
    done = subprocess.run(
        [str(CLI), "crm", "sync", str(world["mapping_id"]), "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_dry_run_diffs_and_writes_nothing(world: dict[str, Any]) -> None:
    people: People = world["people"]
    dry = _full_sync(world, dry_run=True)
    assert dry["status"] == "done"
    # 20 Leads only on Salesforce, 20 contacts only on HubSpot; 20 people on both, equal
    assert dry["planned"] == {"create": 40, "skip": 20}
    assert len(dry["samples"]["create"]) == 5
    assert people.writes("salesforce") == [] and people.writes("hubspot") == []


def test_the_run_reconciles_by_match_key_with_progress(world: dict[str, Any]) -> None:
    people: People = world["people"]
    output = _cli_sync(world)
    assert "create" in output and "done: 40 of 40 pairs" in output
    sf, hs = people.by_email("salesforce", "Lead"), people.by_email("hubspot", "contacts")
    assert set(sf) == set(hs) and len(sf) == 60
    writes = people.writes("salesforce") + people.writes("hubspot")
    assert sorted(w["op"] for w in writes) == ["create"] * 40  # each missing person once
    last = world["api"].get(f"/api/v1/crm/mappings/{world['mapping_id']}/full-syncs").json()[0]
    assert (last["done"], last["total"], last["outcomes"]) == (40, 40, {"done": 40})
    assert last["rate_per_s"] > 0 and last["eta_s"] == 0


def _feeds_at_tip(world: dict[str, Any]) -> None:
    """As if the sync had been off: the feeds' cursors moved past what happened meanwhile."""
    base = world["sandbox"].url
    sf = httpx.get(
        f"{base}/salesforce/cdc/data/LeadChangeEvent?replayId=-1",
        headers={"Authorization": f"Bearer {DEFAULT_SALESFORCE_TOKEN}"},
    ).json()["nextReplayId"]
    hs_events = httpx.get(
        f"{base}/hubspot/_events?after=0&limit=1000",
        headers={"Authorization": f"Bearer {DEFAULT_HUBSPOT_TOKEN}"},
    ).json()
    hs = hs_events["results"][-1]["eventId"] if hs_events["results"] else 0
    with world["engine"].begin() as conn:
        for side, cursor in (("salesforce", sf), ("hubspot", hs)):
            conn.execute(
                sqlalchemy.update(crm_sync_states)
                .where(
                    crm_sync_states.c.mapping_id == world["mapping_id"],
                    crm_sync_states.c.side == side,
                )
                .values(cursor=str(cursor))
            )


def test_drift_behind_the_services_back_is_reconciled_exactly(world: dict[str, Any]) -> None:
    people: People = world["people"]
    worker: WorkerProcess = world["worker"]
    worker.stop()
    drifted = people.http.post(
        "/_sandbox/crm/drift",
        json={
            "platform": "salesforce",
            "object_type": "Lead",
            "count": 7,
            "field": "FirstName",
            "seed": 11,
        },
    ).json()["edited"]
    more = people.http.post(
        "/_sandbox/crm/drift",
        json={
            "platform": "hubspot",
            "object_type": "contacts",
            "count": 4,
            "field": "lastname",
            "seed": 12,
        },
    ).json()["edited"]
    _feeds_at_tip(world)
    worker.start()
    worker.wait_healthy()
    time.sleep(3)  # the feeds have nothing: the drift is invisible to the incremental sync
    before = len(people.writes("salesforce")) + len(people.writes("hubspot"))
    assert before == 40

    # a person drifted on both sides is one pair to update (both ways)
    pairs = {_email_of(people, "salesforce", d["id"]) for d in drifted} | {
        _email_of(people, "hubspot", d["id"]) for d in more
    }
    dry = _full_sync(world, dry_run=True)
    assert dry["planned"] == {"update": len(pairs), "skip": 60 - len(pairs)}
    assert len(people.writes("salesforce")) + len(people.writes("hubspot")) == before
    run = _full_sync(world, dry_run=False)
    assert run["planned"] == dry["planned"] and run["status"] == "done"
    assert run["done"] == run["total"] == len(pairs)
    assert run["outcomes"] == {"done": len(pairs)}

    hs_updates = people.writes("hubspot")[20:]  # after the 20 creates of the run
    sf_updates = people.writes("salesforce")[20:]
    # exactly the drifted records, each once, with exactly the drifted field
    assert all(list(w["fields"]) == ["firstname"] for w in hs_updates)
    assert sorted(w["fields"]["firstname"] for w in hs_updates) == sorted(
        d["value"] for d in drifted
    )
    assert sorted(w["id"] for w in hs_updates) == sorted(
        _hubspot_id(people, d["id"]) for d in drifted
    )
    assert sorted(w["id"] for w in sf_updates) == sorted(
        _salesforce_id(people, d["id"]) for d in more
    )
    assert all(list(w["fields"]) == ["LastName"] for w in sf_updates)
    sf, hs = people.by_email("salesforce", "Lead"), people.by_email("hubspot", "contacts")
    assert all(sf[e]["FirstName"] == hs[e]["firstname"] for e in sf)
    assert all(sf[e]["LastName"] == hs[e]["lastname"] for e in sf)


def _hubspot_id(people: People, salesforce_id: str) -> str:
    lead = next(r for r in people.records("salesforce", "Lead") if r["Id"] == salesforce_id)
    contacts = people.records("hubspot", "contacts")
    return str(next(r["id"] for r in contacts if r["properties"]["email"] == lead["Email"]))


def _salesforce_id(people: People, hubspot_id: str) -> str:
    contact = next(r for r in people.records("hubspot", "contacts") if r["id"] == hubspot_id)
    email = contact["properties"]["email"]
    return str(next(r["Id"] for r in people.records("salesforce", "Lead") if r["Email"] == email))


def _email_of(people: People, platform: str, record_id: str) -> str:
    kind = "Lead" if platform == "salesforce" else "contacts"
    for record in people.records(platform, kind):
        fields = record.get("properties", record)
        if (record.get("Id") or record.get("id")) == record_id:
            return str(fields.get("Email") or fields.get("email")).lower()
    raise AssertionError(f"no {kind} {record_id}")
