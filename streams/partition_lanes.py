"""Per-partition work that runs beside the poll: :class:`PartitionLanes`.

A consumer loop (:mod:`streams.consumer`) that awaits each poll's work before polling again
leaves everything idle while a batch is in flight — the database, the broker's acks, the other
partitions. A loop that hands each partition's records to its *lane* instead polls again at
once; the lanes keep the rules a partition needs:

- **order.** A partition's pieces of work run one after the other, in the order given (each
  waits for the one before, whatever became of it); partitions run concurrently.
- **commits after the work, by the loop.** A piece returns the offset its partition may be
  committed to (``None``: not past anything); :meth:`PartitionLanes.finished` hands the loop
  the highest per partition, and the loop commits them on the consumer's thread. A lane never
  touches the consumer — so a rebalance callback, which blocks that thread inside ``poll``,
  can wait for lanes without a deadlock.
- **bounded.** :meth:`PartitionLanes.room` waits while more than ``limit`` records are in the
  lanes: the poll does not run ahead of the work without end.
- **a revoked partition settles.** :meth:`PartitionLanes.settle` — called on the consumer's
  thread by ``on_revoke`` — waits (up to ``grace_s``) for the revoked partitions' lanes and
  returns what they finished, for the callback to commit while still a member; a lane still
  busy after the grace is cancelled (abandoned: the partition's next owner reads its records
  again, which the work must absorb — Runs and stable event ids do). :meth:`abandon` (a lost
  partition) cancels at once and commits nothing.
- **failures are the loop's.** A piece is meant to contain its own errors; one that escapes
  (a bug) is kept and raised by the loop's next :meth:`finished`, ending the unit as if the
  loop itself had raised it (the supervisor starts a fresh one).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable

from synapseops.logging import get_logger

log = get_logger(__name__)

Partition = tuple[str, int]
Work = Callable[[], Awaitable[int | None]]


class PartitionLanes:
    """One lane per partition; at most about ``limit`` records in all lanes at once."""

    def __init__(self, limit: int, grace_s: float = 60.0) -> None:
        self.limit = limit
        self.grace_s = grace_s
        self._tails: dict[Partition, asyncio.Task[None]] = {}
        self._done: dict[Partition, int] = {}
        self._per: dict[Partition, int] = {}  # records in each partition's lane
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    @property
    def busy(self) -> bool:
        return bool(self._tails)

    def partitions(self) -> list[Partition]:
        """The partitions with work in their lanes."""
        return list(self._per)

    def records_of(self, where: Partition) -> int:
        """Records in ``where``'s lane (given and not yet through)."""
        return self._per.get(where, 0)

    def submit(self, where: Partition, records: int, work: Work) -> None:
        """Run ``work`` (about ``records`` records) after ``where``'s earlier work."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        previous = self._tails.get(where)
        self._per[where] = self._per.get(where, 0) + records
        task = self._loop.create_task(self._run(where, previous, records, work))
        self._tails[where] = task

    async def _run(
        self, where: Partition, previous: asyncio.Task[None] | None, records: int, work: Work
    ) -> None:
        try:
            if previous is not None:
                try:
                    await asyncio.wait([previous])  # its outcome is its own
                except asyncio.CancelledError:
                    previous.cancel()  # a lane abandoned is abandoned whole
                    raise
            upto = await work()
            if upto is not None:
                self._done[where] = max(upto, self._done.get(where, upto))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug in the work: the loop raises it
            log.exception("partition lane failed", extra={"partition": f"{where[0]}/{where[1]}"})
            self._failure = self._failure or exc
        finally:
            self._per[where] -= records
            if not self._per[where]:
                del self._per[where]
            if self._tails.get(where) is asyncio.current_task():
                del self._tails[where]

    def finished(self) -> dict[Partition, int]:
        """The offsets finished since the last call, to commit (on the loop)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        done, self._done = self._done, {}
        return done

    async def room(self) -> None:
        """Wait while the lanes hold more than ``limit`` records."""
        while sum(self._per.values()) > self.limit and self._tails:
            await asyncio.wait(list(self._tails.values()), return_when=asyncio.FIRST_COMPLETED)

    async def drain(self) -> None:
        """Wait for every lane (a consumer about to close); what they finished stays for
        :meth:`finished`. A lane that outlasts the grace is cancelled."""
        await self._wait(list(self._tails), self.grace_s)

    async def _wait(self, partitions: Iterable[Partition], timeout_s: float) -> None:
        wanted = set(partitions)
        tails = [task for where, task in self._tails.items() if where in wanted]
        if not tails:
            return
        _, late = await asyncio.wait(tails, timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            log.warning("partition lanes abandoned after the grace", extra={"lanes": len(late)})
            await asyncio.wait(late)

    async def _settle(self, partitions: list[Partition]) -> dict[Partition, int]:
        await self._wait(partitions, self.grace_s)
        return {where: self._done.pop(where) for where in partitions if where in self._done}

    def settle(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """From the consumer's thread (``on_revoke``): wait for ``partitions``' lanes, then
        what they finished (taken out of :meth:`finished`), to commit there."""
        loop = self._loop
        if loop is None or loop.is_closed() or threading.get_ident() == self._loop_thread:
            return {}
        wanted = list(partitions)
        settling = asyncio.run_coroutine_threadsafe(self._settle(wanted), loop)
        try:
            return settling.result(timeout=self.grace_s + 5)
        except TimeoutError:  # the loop is not running any more (a worker going down)
            settling.cancel()
            return {}

    def abandon(self, partitions: Iterable[Partition]) -> None:
        """From the consumer's thread (``on_lost``): cancel ``partitions``' lanes, forget
        what they finished (the group has moved on: nothing of theirs may be committed)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        wanted = set(partitions)

        def cancel() -> None:
            for where in wanted:
                task = self._tails.get(where)
                if task is not None:
                    task.cancel()
                self._done.pop(where, None)

        if threading.get_ident() == self._loop_thread:
            cancel()
        else:
            loop.call_soon_threadsafe(cancel)
