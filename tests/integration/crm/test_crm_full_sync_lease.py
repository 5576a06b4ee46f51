"""A full sync's lease, on a real database: two full syncs of one mapping never run at once,
and a run whose worker died (its lease ran out) is taken over by the next runner, while the
dead runner — should it wake up — finds the run is no longer its own."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sinks.crm import full_syncs
from synapseops.settings import Settings
from tests.integration.crm.world import crm_world, lead_spec, make_pair


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with crm_world(settings, database_url) as world:
        yield world


def _mapping(world: dict[str, Any]) -> int:
    return make_pair(world, lead_spec(), f"lease-{uuid.uuid4().hex[:6]}")


def _claim_all(world: dict[str, Any], lease_s: float = 30.0) -> list[dict[str, Any]]:
    claimed = []
    while (row := full_syncs.claim_next(world["engine"], lease_s)) is not None:
        claimed.append(row)
    return claimed


def test_two_full_syncs_of_one_mapping_never_run_at_once(world: dict[str, Any]) -> None:
    engine, one, two = world["engine"], _mapping(world), _mapping(world)
    first = full_syncs.request(engine, one, False, "t")
    second = full_syncs.request(engine, one, False, "t")
    other = full_syncs.request(engine, two, True, "t")
    claimed = _claim_all(world)
    # the second of mapping one waits for the first; mapping two's runs meanwhile
    assert sorted(r["id"] for r in claimed) == [first["id"], other["id"]]
    assert full_syncs.get(engine, second["id"])["status"] == "queued"
    full_syncs.save(engine, first["id"], status="done")
    full_syncs.save(engine, other["id"], status="done")
    assert [r["id"] for r in _claim_all(world)] == [second["id"]]
    full_syncs.save(engine, second["id"], status="done")


def test_runners_claiming_at_the_same_moment_take_one_each(world: dict[str, Any]) -> None:
    engine, mapping = world["engine"], _mapping(world)
    requested = [full_syncs.request(engine, mapping, True, "t")["id"] for _ in range(6)]
    claimed: list[dict[str, Any]] = []
    start = threading.Barrier(6)

    def runner() -> None:
        start.wait()
        if (row := full_syncs.claim_next(engine, 30.0)) is not None:
            claimed.append(row)

    threads = [threading.Thread(target=runner) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 1 and claimed[0]["mapping_id"] == mapping
    assert sum(full_syncs.get(engine, i)["status"] == "running" for i in requested) == 1
    full_syncs.save(engine, claimed[0]["id"], status="done")
    for sync_id in requested:
        if full_syncs.get(engine, sync_id)["status"] == "queued":
            full_syncs.cancel(engine, sync_id)


def test_a_run_whose_runner_died_is_taken_over(world: dict[str, Any]) -> None:
    engine, mapping = world["engine"], _mapping(world)
    asked = full_syncs.request(engine, mapping, False, "t")
    (dead,) = _claim_all(world, lease_s=1.0)
    assert full_syncs.renew(engine, dead, 1.0) is not None  # alive: renewing keeps it
    assert _claim_all(world) == []
    time.sleep(1.5)  # the runner died: nobody renews
    (taken,) = _claim_all(world)
    assert taken["id"] == asked["id"] and taken["status"] == "running"
    assert taken["started_at"] > dead["started_at"] and taken["done"] == 0
    # the first runner wakes up: the run is not its own any more, it stops
    assert full_syncs.renew(engine, dead, 30.0) is None
    assert full_syncs.renew(engine, taken, 30.0) is not None
    # every pair handed over: the lease is given up, and nobody takes the run over
    assert full_syncs.renew(engine, taken, None) is not None
    assert _claim_all(world, lease_s=0.01) == []
    full_syncs.save(engine, taken["id"], status="done")
