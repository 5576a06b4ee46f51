"""Delivery reports handed to an event loop in bulk (synapseops.wakeups.Wakeups): every call
runs, in order, on its loop; a burst from a callback thread wakes the loop once, not per call."""

from __future__ import annotations

import asyncio
import threading

from synapseops.wakeups import Wakeups


class CountingLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.wakes = 0

    def call_soon_threadsafe(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.wakes += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_a_burst_from_another_thread_runs_in_order_with_one_wake_up() -> None:
    loop = CountingLoop()
    wakeups = Wakeups()
    seen: list[int] = []
    try:

        async def main() -> None:
            done = loop.create_future()

            def burst() -> None:  # what one poll() of librdkafka does: many reports at once
                for n in range(500):
                    wakeups.soon(loop, seen.append, n)
                wakeups.soon(loop, done.set_result, None)

            thread = threading.Thread(target=burst)
            thread.start()
            await done
            thread.join()

        loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen == list(range(500))
    # The loop was busy waiting while the thread queued: the burst rode on a few wake-ups
    # (one per run the loop got to in between), never one per report.
    assert 1 <= loop.wakes < 50


def test_calls_queued_after_a_run_wake_the_loop_again() -> None:
    loop = CountingLoop()
    wakeups = Wakeups()
    seen: list[str] = []
    try:
        wakeups.soon(loop, seen.append, "a")
        loop.run_until_complete(asyncio.sleep(0.01))
        wakeups.soon(loop, seen.append, "b")
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    assert seen == ["a", "b"] and loop.wakes == 2


def test_a_closed_loop_is_forgotten_not_raised_into_the_callback_thread() -> None:
    loop = CountingLoop()
    loop.close()
    wakeups = Wakeups()
    wakeups.soon(loop, print, "never")  # librdkafka's thread must not die of it
    wakeups.soon(loop, print, "never")
    assert loop.wakes == 2  # each call tried; nothing stays queued for a dead loop
