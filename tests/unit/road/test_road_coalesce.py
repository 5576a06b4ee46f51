"""The coalescer (streams/road/coalesce.py): concurrent batches merged into waves, each batch
answered with exactly its own records' answers, a bounded number of waves at once, and
cancellation that never loses another batch's answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from streams.road import Outcome, RoadRecord
from streams.road.coalesce import Answer, Coalescer


def records(partition: int, count: int, start: int = 0) -> list[RoadRecord]:
    return [
        RoadRecord(
            "t",
            partition,
            offset,
            0,
            f"k{partition}".encode(),
            f"{partition}:{offset}".encode(),
            [],
        )
        for offset in range(start, start + count)
    ]


class Handler:
    """Answers each record with its value and records every call. Each call waits until the
    test releases it (``release``), unless ``hold`` is off."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.running = 0
        self.most_running = 0
        self.hold = True
        self.waiting: list[asyncio.Event] = []
        self.fail: BaseException | None = None

    async def __call__(self, batch: Sequence[RoadRecord]) -> list[Answer]:
        self.calls.append([(r.value or b"").decode() for r in batch])
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.hold:
                gate = asyncio.Event()
                self.waiting.append(gate)
                await gate.wait()
            if self.fail is not None:
                raise self.fail
            return [Outcome("done", (r.value or b"").decode()) for r in batch]
        finally:
            self.running -= 1

    async def release(self, *, hold: bool = True) -> None:
        """Let every call waiting now go on (later calls wait again while ``hold``)."""
        self.hold = hold
        for gate in self.waiting:
            gate.set()
        self.waiting.clear()
        await settle()


async def started(
    handler: Handler, *, max_records: int = 100, in_flight: int = 1, head: int = 1
) -> tuple[Coalescer, asyncio.Future[list[Answer]]]:
    """A coalescer over ``handler`` whose first wave (``head`` records of partition 0) runs."""
    coalescer = Coalescer(handler, max_records=max_records, in_flight=in_flight, pipeline="t")
    first = asyncio.ensure_future(coalescer(records(0, head)))
    await settle()
    return coalescer, first


def submit(coalescer: Coalescer, *sizes: tuple[int, int]) -> list[asyncio.Future[list[Answer]]]:
    """Batches of (partition, how many records), handed in at once."""
    return [asyncio.ensure_future(coalescer(records(p, n))) for p, n in sizes]


async def settle() -> None:
    """Let every ready task run until all wait (a wave task starts a step after its batch)."""
    for _ in range(10):
        await asyncio.sleep(0)


def reasons(answers: Sequence[Answer]) -> list[str]:
    return [a.detail if isinstance(a, Outcome) else repr(a) for a in answers]


def test_batches_that_arrive_during_a_wave_go_together_in_the_next_each_answered_its_own() -> None:
    async def scenario() -> None:
        handler = Handler()
        coalescer, first = await started(handler, head=2)
        later = submit(coalescer, (1, 3), (2, 3), (3, 3))
        await settle()
        assert handler.calls == [["0:0", "0:1"]]  # the others wait for the one wave running
        await handler.release(hold=False)
        assert reasons(await first) == ["0:0", "0:1"]
        answers = [reasons(a) for a in await asyncio.gather(*later)]
        assert answers == [[f"{p}:{o}" for o in range(3)] for p in (1, 2, 3)]
        # One wave for the three, each batch whole and in the order they came.
        assert handler.calls[1] == [f"{p}:{o}" for p in (1, 2, 3) for o in range(3)]
        assert coalescer.waves == 2

    asyncio.run(scenario())


def test_a_wave_holds_at_most_max_records_and_never_splits_a_batch() -> None:
    async def scenario() -> None:
        handler = Handler()
        coalescer, first = await started(handler, max_records=5)
        rest = submit(coalescer, (1, 3), (2, 3), (3, 7))
        await settle()
        await handler.release(hold=False)
        await first
        answers = await asyncio.gather(*rest)
        assert [len(a) for a in answers] == [3, 3, 7]
        assert [len(call) for call in handler.calls] == [1, 3, 3, 7]  # 3+3 > 5; 7 goes alone

    asyncio.run(scenario())


def test_no_more_waves_run_at_once_than_allowed() -> None:
    async def scenario() -> None:
        handler = Handler()
        coalescer, first = await started(handler, max_records=2, in_flight=2, head=2)
        tasks = submit(coalescer, *((p, 2) for p in range(1, 6)))
        await settle()
        assert handler.running == 2
        await handler.release(hold=False)
        await asyncio.gather(first, *tasks)
        assert handler.most_running == 2 and len(handler.calls) == 6

    asyncio.run(scenario())


def test_a_handler_that_raises_raises_in_every_batch_of_its_wave() -> None:
    async def scenario() -> None:
        handler = Handler()
        handler.fail = RuntimeError("database gone")
        coalescer, first = await started(handler)
        both = submit(coalescer, (1, 2), (2, 2))
        await settle()
        await handler.release(hold=False)
        results = await asyncio.gather(first, *both, return_exceptions=True)
        assert [type(r) for r in results] == [RuntimeError] * 3
        assert len(handler.calls) == 2  # the first wave, then the two together
        handler.fail = None
        assert reasons(await coalescer(records(1, 1))) == ["1:0"]  # the next wave runs

    asyncio.run(scenario())


def test_a_batch_cancelled_while_queued_never_reaches_the_handler() -> None:
    async def scenario() -> None:
        handler = Handler()
        coalescer, first = await started(handler)
        gone, kept = submit(coalescer, (1, 2), (2, 2))
        await settle()
        gone.cancel()
        await settle()
        await handler.release(hold=False)
        await first
        assert reasons(await kept) == ["2:0", "2:1"]
        assert handler.calls == [["0:0"], ["2:0", "2:1"]]
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(scenario())


def test_one_batch_cancelled_in_a_running_wave_leaves_the_wave_to_the_others() -> None:
    async def scenario() -> None:
        handler = Handler()
        coalescer, first = await started(handler)
        gone, kept = submit(coalescer, (1, 2), (2, 2))
        await settle()
        await handler.release()  # the first wave ends; the second starts and is held
        await first
        assert handler.calls[1] == ["1:0", "1:1", "2:0", "2:1"]  # both in the running wave
        assert handler.running == 1
        gone.cancel()
        await settle()
        assert handler.running == 1  # still running for the batch that waits for it
        await handler.release(hold=False)
        assert reasons(await kept) == ["2:0", "2:1"]
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(scenario())


def test_a_wave_every_batch_of_which_was_abandoned_is_cancelled() -> None:
    async def scenario() -> None:
        handler = Handler()
        coalescer, only = await started(handler, head=3)
        assert handler.running == 1
        only.cancel()
        await settle()
        assert handler.running == 0  # the handler's await was cancelled too
        handler.hold = False
        assert reasons(await coalescer(records(1, 1))) == ["1:0"]

    asyncio.run(scenario())
