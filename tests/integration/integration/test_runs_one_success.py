"""Two attempts of one event that both reach the target: one succeeded Run, one duplicate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sinks.integration import runs as run_log
from sinks.integration.tables import DUPLICATE, SUCCEEDED
from synapseops.settings import Settings
from tests.integration.integration.world import MAPPING, make_flow, runs_of, world_context


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with world_context(settings, database_url) as built:
        yield built


def test_a_raced_second_delivery_is_recorded_as_duplicate(world: dict[str, Any]) -> None:
    engine = world["engine"]
    flow_id = make_flow(world, "orders/create", json.loads(MAPPING.read_text()))
    source = run_log.SourceEvent(
        event_id="wh-race", connector="shop", endpoint="orders/create", body=b"{}"
    )
    # Both attempts passed the "already delivered?" check before either finished.
    first, second = (
        run_log.start_run(
            engine, flow_id=flow_id, source=source, attempt=n, mapping_version=1, trace_id=None
        )
        for n in (1, 2)
    )
    for run_id in (first, second):
        run_log.finish_run(engine, run_id, status=SUCCEEDED, duration_ms=5)
    statuses = {row["id"]: row["status"] for row in runs_of(world, flow_id)}
    assert statuses == {first: SUCCEEDED, second: DUPLICATE}
    assert run_log.succeeded_run(engine, flow_id, "wh-race") == first
