"""The demo's CRM pair (what ``make demo`` sets up) through the real API, a worker and the
sandbox: made once however often the demo runs, and people's edits on both sides synced."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.crm_demo import CrmDemo
from synapseops.settings import Settings
from tests.integration.crm.world import crm_worker, crm_world, wait_for


@pytest.fixture(scope="module")
def demo(
    settings: Settings, kafka_bootstrap: str, database_url: str, tmp_path_factory: Any
) -> Iterator[CrmDemo]:
    with crm_world(settings, database_url) as world:
        with crm_worker(world, kafka_bootstrap, tmp_path_factory.mktemp("crm-demo")):
            api = world["api"]
            yield CrmDemo(api, str(api.base_url).rstrip("/"), {}, world["sandbox"].url)


def test_the_demo_pair_is_made_once_and_syncs_both_ways(demo: CrmDemo) -> None:
    mapping_id = demo.ensure_pair()
    assert demo.ensure_pair() == mapping_id  # a second `make demo` finds it
    rng = random.Random(5)
    people = {demo.create(side, rng) for side in ("salesforce", "hubspot") * 2}
    wait_for(lambda: demo.synced(people) == people, what="the demo's people on both sides")
    did = [demo.step(rng) for _ in range(6)]
    assert all(did)
    edited = [d for d in did if ": FirstName = " in d or ": firstname = " in d]

    def agree() -> bool:
        sf, hs = demo.emails("salesforce"), demo.emails("hubspot")
        return set(sf) == set(hs) and all(sf[e]["FirstName"] == hs[e]["firstname"] for e in sf)

    wait_for(agree, what=f"both sides agree after {edited}")
