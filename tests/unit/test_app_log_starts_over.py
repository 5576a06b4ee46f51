"""The worker's Faust consumer reads a partition whose log started over (its topic deleted and
re-created under it, no rebalance between) from the new start, instead of dropping every
record below the last offset it read (what Faust's own consumer does)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.app import _Consumer

TRIGGERS, OTHER = TP("triggers", 1), TP("other", 0)


def _consumer() -> Any:
    consumer: Any = object.__new__(_Consumer)  # only the bookkeeping getmany touches
    consumer._read_offset = defaultdict(lambda: None, {TRIGGERS: 557, OTHER: 40})
    consumer._gap = {TRIGGERS: "gaps"}
    consumer._acked = {TRIGGERS: [556, 557], OTHER: [40]}
    consumer._acked_index = {TRIGGERS: {556, 557}}
    consumer._committed_offset = {TRIGGERS: 556, OTHER: 39}
    return consumer


def _fetched(*records: tuple[TP, int]) -> Any:
    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Any]]:  # noqa: ASYNC109
        for tp, offset in records:
            yield tp, SimpleNamespace(offset=offset)

    return getmany


def _read(consumer: Any) -> list[tuple[TP, int]]:
    async def run() -> list[tuple[TP, int]]:
        return [(tp, message.offset) async for tp, message in consumer.getmany(1.0)]

    return asyncio.run(run())


def test_a_log_that_started_over_is_forgotten_and_its_records_handed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        faust_aiokafka.Consumer, "getmany", _fetched((TRIGGERS, 0), (TRIGGERS, 1), (OTHER, 41))
    )
    consumer = _consumer()
    assert _read(consumer) == [(TRIGGERS, 0), (TRIGGERS, 1), (OTHER, 41)]
    # Faust's drain loop reads the offset after each record is handled; nothing of the old
    # log is left to make it drop offset 0 (or 1) of the new one, or commit as if at 556.
    assert consumer._read_offset[TRIGGERS] is None
    for bookkeeping in ("_gap", "_acked", "_acked_index", "_committed_offset"):
        assert TRIGGERS not in getattr(consumer, bookkeeping)
    # Another partition, read on in order, keeps what Faust knows of it.
    assert (consumer._read_offset[OTHER], consumer._committed_offset[OTHER]) == (40, 39)
    assert consumer._acked[OTHER] == [40]


def test_records_read_in_order_or_again_at_the_last_offset_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        faust_aiokafka.Consumer, "getmany", _fetched((TRIGGERS, 557), (TRIGGERS, 558))
    )
    consumer = _consumer()
    assert _read(consumer) == [(TRIGGERS, 557), (TRIGGERS, 558)]
    assert consumer._read_offset[TRIGGERS] == 557  # Faust's drain loop moves it, not this
    assert consumer._committed_offset[TRIGGERS] == 556
