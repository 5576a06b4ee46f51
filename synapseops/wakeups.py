"""Calls handed from a library's callback threads to asyncio event loops in bulk: :class:`Wakeups`
(librdkafka's delivery reports, for :class:`synapseops.kafka.AsyncProducer`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

Call = tuple[Callable[..., None], tuple[Any, ...]]


class Wakeups:
    """Calls handed from librdkafka's callback threads to event loops, in order, with at most
    one wake-up of a loop in flight.

    ``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call: with one per
    delivery report, that write and the loop's read of it were ~9% of py-spy's samples of the
    ingress at ~1,100 requests/s. Here the first call queued for a loop schedules one run of
    everything queued for it by then; calls queued before that run starts ride along.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[asyncio.AbstractEventLoop, list[Call]] = {}

    def soon(self, loop: asyncio.AbstractEventLoop, call: Callable[..., None], *args: Any) -> None:
        with self._lock:
            queued = self._queued.setdefault(loop, [])
            queued.append((call, args))
            first = len(queued) == 1
        if first:
            try:
                loop.call_soon_threadsafe(self._run, loop)
            except RuntimeError:  # the loop is closed: nobody waits for these any more
                with self._lock:
                    self._queued.pop(loop, None)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            calls = self._queued.pop(loop, [])
        for call, args in calls:
            call(*args)
