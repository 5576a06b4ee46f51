"""process_batch(): the batch handler contract — runs of one kind, one answer per record,
failures routed together, a raising batch falling back to record by record (no broker)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from streams.road.batch import process_batch, runs_of
from streams.road.pipeline import Outcome, Pipeline
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from streams.road.tiers import Hop
from synapseops import errors
from synapseops.headers import MESSAGE_KIND
from tests.unit.road.test_road_pipeline import RECORD, RecordingProducer
from topics.registry import PipelineSpec

SPEC = PipelineSpec(name="pay", inputs=("in",), retry_delays=(1.0, 2.0, 3.0))


def _records(*kinds: str) -> list[RoadRecord]:
    """One record per kind, on the input; a kind no handler takes sits on a retry tier (on an
    input the topic would decide its kind)."""
    return [
        replace(
            RECORD,
            topic="in" if kind in ("event", "approve") else "pay.retry.1s",
            offset=100 + index,
            key=f"k{index}".encode(),
            value=f"v{index}".encode(),
            headers=[(MESSAGE_KIND, kind.encode())],
        )
        for index, kind in enumerate(kinds)
    ]


def _pipeline(handlers: dict[str, Any], batch_handlers: dict[str, Any]) -> Pipeline:
    return Pipeline(
        name="pay",
        spec=SPEC,
        handlers=handlers,
        input_kinds={"in": tuple(handlers)},
        batch_handlers=batch_handlers,
        jitter=0.0,
    )


def _run(pipeline: Pipeline, records: list[RoadRecord]) -> tuple[list[Any], RecordingProducer]:
    producer = RecordingProducer()
    router = FailureRouter(producer, clock_ms=lambda: 5_000, rng=random.Random(1))  # type: ignore[arg-type]
    return asyncio.run(process_batch(pipeline, records, router)), producer


async def _one(record: RoadRecord) -> Outcome:
    return Outcome("done", f"one {record.value!r}")


def test_runs_keep_order_and_split_on_kind() -> None:
    pipeline = _pipeline({"event": _one, "approve": _one}, {})
    records = _records("event", "event", "approve", "event", "nope")
    runs = runs_of(pipeline, records)
    assert [(kind, [r.offset for r in run]) for kind, run in runs] == [
        ("event", [100, 101]),
        ("approve", [102]),
        ("event", [103]),
        (None, [104]),
    ]


def test_one_answer_per_record_and_failures_routed_in_place() -> None:
    seen: list[list[int]] = []

    async def batch(records: Sequence[RoadRecord]) -> list[Outcome | BaseException]:
        seen.append([r.offset for r in records])
        return [
            Outcome("done"),
            errors.TargetUnavailable("503", status=503),
            errors.SchemaInvalid("bad"),
            errors.BusinessRejection("frozen"),
        ]

    results, producer = _run(_pipeline({"event": _one}, {"event": batch}), _records(*["event"] * 4))
    assert seen == [[100, 101, 102, 103]]
    assert results[0] == Outcome("done")
    assert isinstance(results[1], Hop) and results[1].topic == "pay.retry.1s"
    assert isinstance(results[2], Hop) and results[2].dead
    assert results[3] == Outcome("rejected", "frozen")
    # The failed records, and only they, were handed off — their own bytes, in order.
    assert [(topic, value) for topic, _, value, _ in producer.sent] == [
        ("pay.retry.1s", b"v1"),
        ("pay.dlq", b"v2"),
    ]


def test_a_raising_batch_fails_no_neighbour() -> None:
    async def batch(records: Sequence[RoadRecord]) -> list[Outcome]:
        raise RuntimeError("the set-based write hit a poison row")

    async def one(record: RoadRecord) -> Outcome:
        if record.value == b"v1":
            raise errors.SchemaInvalid("poison")
        return Outcome("done")

    results, producer = _run(_pipeline({"event": one}, {"event": batch}), _records(*["event"] * 3))
    assert results[0] == Outcome("done") and results[2] == Outcome("done")
    assert isinstance(results[1], Hop) and results[1].dead
    assert [value for _, _, value, _ in producer.sent] == [b"v1"]


@pytest.mark.parametrize("answer", [lambda n: [Outcome("done")] * (n - 1), lambda n: [None] * n])
def test_a_broken_answer_never_drops_a_record(answer: Any) -> None:
    async def batch(records: Sequence[RoadRecord]) -> Any:
        return answer(len(records))

    results, producer = _run(
        _pipeline({"event": _one}, {"event": batch}), _records("event", "event")
    )
    assert len(results) == 2
    # A short answer falls back to record by record; a non-answer is a dead letter per record.
    assert all(isinstance(r, Outcome) for r in results) or all(
        isinstance(r, Hop) and r.dead for r in results
    )


def test_kinds_without_a_batch_handler_go_one_by_one_and_unknown_kinds_die() -> None:
    calls: list[str] = []

    async def batch(records: Sequence[RoadRecord]) -> list[Outcome]:
        calls.append(f"batch{len(records)}")
        return [Outcome("done")] * len(records)

    async def approve(record: RoadRecord) -> Outcome:
        calls.append("approve")
        return Outcome("done")

    pipeline = _pipeline({"event": _one, "approve": approve}, {"event": batch})
    results, producer = _run(pipeline, _records("event", "event", "approve", "approve", "x"))
    assert calls == ["batch2", "approve", "approve"]
    assert isinstance(results[4], Hop) and results[4].dead
    assert len(producer.sent) == 1


def test_cancellation_escapes() -> None:
    async def batch(records: Sequence[RoadRecord]) -> list[Outcome]:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        _run(_pipeline({"event": _one}, {"event": batch}), _records("event", "event"))


def test_a_batch_handler_needs_a_per_record_handler_of_its_kind() -> None:
    with pytest.raises(errors.ConfigurationError):
        _pipeline({"event": _one}, {"approve": _one})
