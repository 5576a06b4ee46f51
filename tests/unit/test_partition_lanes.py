"""Partition lanes (streams/partition_lanes.py): work beside the poll, in order per partition,
committed by the loop, settled from the consumer's thread on a revoke."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from streams.partition_lanes import PartitionLanes

A, B = ("t", 0), ("t", 1)


def piece(
    log: list[tuple[str, int]], where: tuple[str, int], n: int, delay: float
) -> Callable[[], Awaitable[int | None]]:
    async def work() -> int | None:
        log.append(("start", n))
        await asyncio.sleep(delay)
        log.append(("end", n))
        return n + 1

    return work


def test_a_partitions_pieces_run_in_order_and_partitions_concurrently() -> None:
    async def scenario() -> tuple[list[tuple[str, int]], list[tuple[str, int]], float, dict]:
        lanes = PartitionLanes(limit=1_000)
        a: list[tuple[str, int]] = []
        b: list[tuple[str, int]] = []
        loop = asyncio.get_running_loop()
        began = loop.time()
        # The first of A is the slowest: the second must still wait for it.
        lanes.submit(A, 1, piece(a, A, 10, 0.2))
        lanes.submit(A, 1, piece(a, A, 11, 0.0))
        lanes.submit(B, 1, piece(b, B, 20, 0.2))
        assert lanes.busy
        await lanes.drain()
        return a, b, loop.time() - began, lanes.finished()

    a, b, took, done = asyncio.run(scenario())
    assert a == [("start", 10), ("end", 10), ("start", 11), ("end", 11)]
    assert b == [("start", 20), ("end", 20)]
    assert took < 0.35  # A and B side by side, not 0.4 s one after the other
    assert done == {A: 12, B: 21}  # the highest finished offset per partition


def test_finished_hands_each_offset_once_and_nothing_for_work_that_got_nowhere() -> None:
    async def scenario() -> tuple[dict, dict, dict]:
        lanes = PartitionLanes(limit=1_000)

        async def nothing() -> int | None:
            return None

        lanes.submit(A, 1, nothing)
        await lanes.drain()
        first = lanes.finished()
        lanes.submit(A, 1, piece([], A, 4, 0))
        await lanes.drain()
        return first, lanes.finished(), lanes.finished()

    assert asyncio.run(scenario()) == ({}, {A: 5}, {})


def test_room_waits_while_the_lanes_hold_more_than_the_limit() -> None:
    async def scenario() -> tuple[bool, bool]:
        lanes = PartitionLanes(limit=10)
        lanes.submit(A, 8, piece([], A, 1, 0.1))
        await asyncio.wait_for(lanes.room(), 0.01)  # 8 of 10: room at once
        lanes.submit(B, 8, piece([], B, 2, 0.1))
        waited = asyncio.get_running_loop().time()
        await lanes.room()  # 16 > 10: until one lane is through
        late = asyncio.get_running_loop().time() - waited >= 0.05
        return late, lanes.busy

    late, busy = asyncio.run(scenario())
    assert late


def test_an_escaped_error_is_raised_by_the_loops_next_finished() -> None:
    async def scenario() -> None:
        lanes = PartitionLanes(limit=1_000)

        async def broken() -> int | None:
            raise RuntimeError("a bug")

        lanes.submit(A, 1, broken)
        lanes.submit(A, 1, piece([], A, 7, 0))  # the partition's next piece still runs
        await lanes.drain()
        with pytest.raises(RuntimeError, match="a bug"):
            lanes.finished()
        assert lanes.finished() == {A: 8}

    asyncio.run(scenario())


def test_settle_from_the_consumers_thread_waits_for_the_revoked_lanes_only() -> None:
    async def scenario() -> tuple[dict, list[tuple[str, int]], dict]:
        lanes = PartitionLanes(limit=1_000)
        a: list[tuple[str, int]] = []
        lanes.submit(A, 1, piece(a, A, 30, 0.2))
        lanes.submit(B, 1, piece([], B, 40, 5.0))  # not revoked: not waited for
        # As on_revoke does, on another thread, while the loop is free (awaiting the poll).
        settled = await asyncio.to_thread(lanes.settle, [A])
        rest = lanes.finished()
        lanes.abandon([B])
        await asyncio.sleep(0.01)
        return settled, a, {**rest, **lanes.finished(), "busy": lanes.busy}

    settled, a, rest = asyncio.run(scenario())
    assert settled == {A: 31}  # finished, and taken out of what the loop commits
    assert a == [("start", 30), ("end", 30)]
    assert rest == {"busy": False}  # B abandoned: nothing of it to commit


def test_a_lane_that_outlasts_the_grace_is_abandoned_whole() -> None:
    async def scenario() -> tuple[dict, list[tuple[str, int]]]:
        lanes = PartitionLanes(limit=1_000, grace_s=0.1)
        a: list[tuple[str, int]] = []
        lanes.submit(A, 1, piece(a, A, 1, 5.0))
        lanes.submit(A, 1, piece(a, A, 2, 0.0))
        settled = await asyncio.to_thread(lanes.settle, [A])
        await asyncio.sleep(0.05)
        return settled, a

    settled, a = asyncio.run(scenario())
    assert settled == {}
    assert a == [("start", 1)]  # cancelled in its sleep; the piece behind it never ran


def test_settle_on_the_loops_own_thread_does_not_deadlock() -> None:
    async def scenario() -> dict:
        lanes = PartitionLanes(limit=1_000)
        lanes.submit(A, 1, piece([], A, 1, 0.05))
        return lanes.settle([A])

    assert asyncio.run(asyncio.wait_for(scenario(), 1)) == {}
