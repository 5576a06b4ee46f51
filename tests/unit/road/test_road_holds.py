"""What a tier consumer holds: never committed past, nothing behind a long wait blocked."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.road.holds import Holds
from streams.road.record import RoadRecord


def _record(offset: int, partition: int = 0, size: int = 1) -> RoadRecord:
    return RoadRecord("t", partition, offset, None, None, b"x" * size, [])


def test_a_tier_holds_its_head_and_pauses_then_resumes_just_past_it() -> None:
    holds = Holds(capacity=1)
    head = _record(10)
    assert holds.take(head)
    assert holds.hold(head, due_ms=500) is True  # pause now
    assert not holds.take(_record(11))  # fetched before the pause took effect
    assert holds.due(499) == []
    assert holds.due(500) == [(head, 500)]
    finished = holds.finish(head)
    assert (finished.commit_offset, finished.resume_at) == (11, 11)
    assert holds.take(_record(11))


def test_parking_lets_a_short_wait_behind_a_long_one_go_first_committing_only_below_it() -> None:
    holds = Holds(capacity=100)
    long_wait, short_wait, due_now = _record(0), _record(1), _record(2)
    for record in (long_wait, short_wait, due_now):
        assert holds.take(record)
    assert holds.hold(long_wait, 3_600_000) is False
    assert holds.hold(short_wait, 600_000) is False
    # The one due at once runs at once; the commit stays at the long wait's offset.
    assert holds.finish(due_now).commit_offset == 0
    assert holds.due(600_000) == [(short_wait, 600_000)]
    assert holds.finish(short_wait).commit_offset == 0
    assert holds.earliest_due() == 3_600_000
    assert holds.due(3_600_000) == [(long_wait, 3_600_000)]
    assert holds.finish(long_wait).commit_offset == 3


def test_a_full_partition_pauses_by_count_or_bytes_and_resumes_with_room() -> None:
    holds = Holds(capacity=2, max_bytes=100)
    first, second = _record(0, size=10), _record(1, size=10)
    holds.take(first)
    assert holds.hold(first, 50) is False
    holds.take(second)
    assert holds.hold(second, 60) is True
    assert not holds.take(_record(2))
    holds.due(50)
    assert holds.finish(first).resume_at == 2
    big = Holds(capacity=100, max_bytes=100)
    large = _record(0, size=150)
    big.take(large)
    assert big.hold(large, 10) is True


def test_a_revoked_partition_is_forgotten() -> None:
    holds = Holds(capacity=1)
    record = _record(5, partition=3)
    holds.take(record)
    holds.hold(record, 100)
    assert holds.drop(("t", 3)) is True
    assert holds.earliest_due() is None
    assert holds.take(_record(2, partition=3))  # its next owner's business now; fresh start


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.one_of(st.integers(0, 1000), st.none()), min_size=1, max_size=60),
    capacity=st.integers(1, 8),
)
def test_the_commit_point_never_passes_an_unfinished_record(
    steps: list[int | None], capacity: int
) -> None:
    """``int``: the next record arrives, due at that time; ``None``: 100 ms pass."""
    holds = Holds(capacity=capacity)
    unfinished: set[int] = set()
    commits: list[int] = []
    offset, clock = 0, 0

    def finish(record: RoadRecord) -> None:
        unfinished.discard(record.offset)
        finished = holds.finish(record)
        # Never past an unfinished record, and never short of one: exactly the lowest.
        assert finished.commit_offset == min(unfinished, default=offset)
        commits.append(finished.commit_offset)

    for step in [*steps, *([None] * 12)]:
        if step is None:
            clock += 100
            for record, _ in holds.due(clock):
                finish(record)
            continue
        record = _record(offset)
        if not holds.take(record):
            continue  # paused: the consumer reads it again after the resume
        offset += 1
        unfinished.add(record.offset)
        if step <= clock:
            finish(record)
        else:
            holds.hold(record, step)
    assert not unfinished and holds.held_count() == 0
    assert commits == sorted(commits)
    assert not commits or commits[-1] == offset


def test_a_tier_consumer_never_resets_to_latest_and_parking_holds_many() -> None:
    from streams.road.pipeline import Outcome, Pipeline
    from streams.road.router import FailureRouter
    from streams.road.tier_consumer import (
        PARKING_CAPACITY,
        TIER_CAPACITY,
        TIER_MAX_BYTES,
        tier_consumers,
    )
    from synapseops.settings import KafkaSettings
    from topics.registry import PipelineSpec

    async def handler(record: RoadRecord) -> Outcome:
        return Outcome("done")

    spec = PipelineSpec("p", ("in",), (1.0, 2.0))
    pipeline = Pipeline(name="p", spec=spec, handlers={"p": handler})
    consumers = tier_consumers(
        pipeline,
        FailureRouter(None),  # type: ignore[arg-type]
        KafkaSettings(bootstrap="127.0.0.1:1"),
        "w",
        consumer_overrides={"auto.offset.reset": "latest"},
    )
    assert [c.topic for c in consumers] == ["p.retry.1s", "p.retry.2s", "p.parking"]
    assert {c._config["auto.offset.reset"] for c in consumers} == {"earliest"}
    assert [c._holds.capacity for c in consumers] == [
        TIER_CAPACITY,
        TIER_CAPACITY,
        PARKING_CAPACITY,
    ]
    assert [c._holds.max_bytes for c in consumers][:2] == [TIER_MAX_BYTES] * 2
    assert {c.group_id for c in consumers} == {"w.p.tiers"}


def test_a_tier_takes_a_burst_of_one_partition_at_once_and_runs_it_together() -> None:
    """Twelve failures of one partition land on a tier together; its consumer holds them all
    (due in offset order) without pausing, so they come due together: holding only the head
    re-fetched each record after the one before it ran (up to 0.6 s late, bench road)."""
    from streams.road.tier_consumer import TIER_CAPACITY, TIER_MAX_BYTES

    holds = Holds(TIER_CAPACITY, TIER_MAX_BYTES)
    burst = [_record(offset, size=2_000) for offset in range(100, 112)]
    for n, record in enumerate(burst):
        assert holds.take(record)
        assert holds.hold(record, due_ms=1_000 + n) is False  # room: the partition flows on
    assert holds.due(1_011) == [(record, 1_000 + n) for n, record in enumerate(burst)]
    commits = [holds.finish(record) for record in burst]
    assert [c.commit_offset for c in commits] == [*range(101, 112), 112]
    assert {c.resume_at for c in commits} == {None}  # never paused
