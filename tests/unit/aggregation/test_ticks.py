"""The tick feed's records: what the market logic reads, ids never reused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from streams.aggregation.logic.common import Context
from streams.aggregation.ticks import TickFeed
from streams.aggregation.transform import transform
from synapseops.headers import message_kind
from synapseops.settings import AggregationSettings
from topics.registry import MARKET_TICK, MARKET_TICKS

CONTEXT = Context("market", "stream", datetime.now(UTC), "4bf92f3577b34da6a3ce929d0e0e4736")


def test_ticks_transform_and_their_seq_only_grows() -> None:
    feed = TickFeed(AggregationSettings(ticks_symbols="ACME,GLOBX"), producer=None)  # type: ignore[arg-type]
    records = [feed.tick("ACME") for _ in range(200)]
    ticks: list[dict[str, Any]] = [json.loads(r.value or b"") for r in records]
    seqs = [tick["seq"] for tick in ticks]
    assert seqs == sorted(set(seqs))
    assert all(r.topic == MARKET_TICKS.name and r.key == b"ACME" for r in records)
    assert message_kind(list(records[0].headers or [])) == MARKET_TICK
    events = [transform("market", r.value, CONTEXT)[0] for r in records]
    assert len({event.id for event in events}) == 200
    assert all(isinstance(t["price"], str) and float(t["price"]) > 0 for t in ticks)
    # A fresh feed (a restarted worker) does not reuse ids.
    again = TickFeed(AggregationSettings(ticks_symbols="ACME"), producer=None)  # type: ignore[arg-type]
    assert json.loads(again.tick("ACME").value or b"")["seq"] > seqs[-1]
