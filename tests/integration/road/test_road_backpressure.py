"""Back-pressure on a real worker: while its pipeline is stuck and the topic is far ahead, the
worker holds a bounded number of records (its partitions are paused), not the backlog.

The event log's table is locked, so every partition's first batch waits inside its insert;
then ~100 MB of events arrive. With ``SYNAPSEOPS_ROAD_BUFFER_RECORDS=100`` each of the six
partitions may hold 100 records (~0.4 MB) plus the one fetch response Kafka's client keeps
(≤ 1 MiB), so the worker's resident memory grows by a few MB, not by the backlog (measured:
125 → 136 MB). The road as it was (``noack_take``, Faust's 4096 per partition) held the
backlog: 125 → 265 MB. Then the lock is released and every event is stored exactly once.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import sqlalchemy

from synapseops.settings import KafkaSettings
from tests.integration.databases import fresh_database
from tests.integration.groups import start_groups_at_end
from tests.integration.road.test_road_batches import (
    events,
    produce,
    stored_ids,
    wait_for,
    worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

BUFFER = {
    "SYNAPSEOPS_ROAD_BUFFER_RECORDS": "100",
    "SYNAPSEOPS_ROAD_BATCH_SIZE": "50",
    "SYNAPSEOPS_ROAD_BATCH_WITHIN_MS": "5",
}
BACKLOG, VALUE_BYTES = 24_000, 4096
# Allowed growth while the backlog waits: the bound (6 × (100 records + one 1 MiB fetch)),
# with room for the allocator; holding the backlog would be ~100 MB.
GROWTH_BOUND_MB = 40


@pytest.fixture
def database(database_url: str) -> Iterator[str]:
    with fresh_database(database_url, "t_road_backpressure") as url:
        yield url


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_a_stuck_pipeline_with_a_topic_far_ahead_holds_a_bounded_buffer(
    kafka_bootstrap: str, database: str, tmp_path: Path
) -> None:
    run = uuid4().hex[:8]
    engine = sqlalchemy.create_engine(database)
    # From the topic's end: what other tests left there would fill (and inflate) the baseline.
    start_groups_at_end(KafkaSettings(bootstrap=kafka_bootstrap), f"t-bp-{run}", "1s,2s,3s")
    process = worker(kafka_bootstrap, database, tmp_path, f"t-bp-{run}", **BUFFER)
    process.start()
    try:
        process.wait_healthy()
        # Warm up: 60 events of this run, handled.
        produce(kafka_bootstrap, events(f"{run}w", 60))
        wait_for(lambda: len(stored_ids(engine, f"{run}w")) == 60, "the warm-up", 120)
        assert process.process is not None
        pid = process.process.pid
        baseline = rss_mb(pid)

        padding = b', "pad": "' + b" " * VALUE_BYTES + b'"}'  # each body ~4 KB of JSON
        backlog = [
            dataclasses.replace(record, value=(record.value or b"}")[:-1] + padding)
            for record in events(run, BACKLOG)
        ]
        with engine.connect() as lock:
            lock.execute(sqlalchemy.text("LOCK TABLE inbound_events IN ACCESS EXCLUSIVE MODE"))
            produce(kafka_bootstrap, backlog)
            peak, until = baseline, time.monotonic() + 15
            while time.monotonic() < until:  # the worker fetches what it may meanwhile
                peak = max(peak, rss_mb(pid))
                time.sleep(0.25)
            lock.rollback()
        print(f"worker RSS {baseline:.0f} MB before the backlog, peak {peak:.0f} MB during it")
        assert peak - baseline < GROWTH_BOUND_MB, (baseline, peak)

        wait_for(lambda: len(stored_ids(engine, run)) >= BACKLOG, "the backlog", 300)
        counts = Counter(stored_ids(engine, run))
        assert len(counts) == BACKLOG and set(counts.values()) == {1}
    finally:
        process.stop()
        engine.dispose()
