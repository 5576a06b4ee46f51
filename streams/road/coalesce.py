"""The batches a pipeline's actors hand in at the same time, merged into one call of its batch
handler: :class:`Coalescer` (group commit).

Each assigned partition has its own actor (:mod:`streams.road.agent`), and each actor its own
batch. A handler whose effects cost per call — a transaction, a request to an outside system —
pays that cost once per partition per cycle: at a moderate rate six partitions bring six
batches of a few records each, six decide transactions, six finance requests, six record
transactions, all competing for one event loop, and a record waits for the calls of the
others. Merged, those batches are one call: the fixed cost is paid once for all of them.

How batches are merged. A batch handed in (:meth:`Coalescer.__call__`) joins the queue; a
*wave* starts whenever fewer than ``in_flight`` waves are running, and takes every batch
queued so far, whole and in the order they came, up to ``max_records`` records (a batch is
never split: a larger one goes alone). Nothing waits for company: while a wave runs, the
batches that arrive meanwhile gather for the next one, so a wave is whatever accumulated
during the last — small when traffic is light, large when it is heavy.

What the handler gets, and why it holds the road's contract. The records of a wave are the
batches' records one batch after another. Each batch is one partition's records in offset
order and a partition hands in its next batch only after its actor got the answers for this
one, so each key's records are in offset order in the wave and no key is in two waves at
once from its partition. Each batch gets back exactly its records' answers, in order. A
handler that raises as a whole raises in every batch of the wave (the road then handles
their records one by one: :func:`streams.road.batch.process_batch`).

Cancellation. An actor cancelled while its batch waits (a revoke, a stop) takes its batch out
of the queue. An actor cancelled while its batch is in a running wave leaves the wave
running for the others — its records' effects may commit, as after a crash mid-batch, and
the batch, unacked, is redone by the partition's next owner (the handler must absorb that,
as every road handler does). A wave whose every batch was abandoned is cancelled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from streams.road import metrics
from streams.road.pipeline import BatchHandler, Outcome
from streams.road.record import RoadRecord

Answer = Outcome | BaseException


@dataclass(eq=False)
class _Batch:
    records: list[RoadRecord]
    answers: asyncio.Future[list[Answer]]
    wave: _Wave | None = None
    abandoned: bool = False


@dataclass(eq=False)
class _Wave:
    batches: list[_Batch]
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Coalescer:
    """A batch handler that merges concurrent batches into waves (module docstring)."""

    def __init__(
        self, handler: BatchHandler, *, max_records: int, in_flight: int, pipeline: str
    ) -> None:
        if max_records < 1 or in_flight < 1:
            raise ValueError("a coalescer needs max_records >= 1 and in_flight >= 1")
        self.handler = handler
        self.wave_batches = metrics.WAVE_BATCHES.labels(pipeline)
        self.max_records = max_records
        self.in_flight = in_flight
        self._queue: deque[_Batch] = deque()
        self._running: set[_Wave] = set()
        self.waves = 0  # how many waves ran (tests and the bench read it)

    async def __call__(self, records: Sequence[RoadRecord]) -> list[Answer]:
        if not records:
            return []
        batch = _Batch(list(records), asyncio.get_running_loop().create_future())
        self._queue.append(batch)
        self._start_waves()
        try:
            return await asyncio.shield(batch.answers)
        except asyncio.CancelledError:
            self._abandon(batch)
            raise

    def _abandon(self, batch: _Batch) -> None:
        batch.abandoned = True
        wave = batch.wave
        if wave is None:
            self._queue.remove(batch)  # never started: nothing of it ran
        elif wave.task is not None and all(b.abandoned for b in wave.batches):
            wave.task.cancel()  # nobody waits for this wave any more

    def _start_waves(self) -> None:
        while self._queue and len(self._running) < self.in_flight:
            batches: list[_Batch] = []
            size = 0
            while self._queue and (
                not batches or size + len(self._queue[0].records) <= self.max_records
            ):
                batch = self._queue.popleft()
                batches.append(batch)
                size += len(batch.records)
            wave = _Wave(batches)
            for batch in batches:
                batch.wave = wave
            self._running.add(wave)
            self.waves += 1
            self.wave_batches.observe(len(batches))
            wave.task = asyncio.ensure_future(self._run(wave))

    async def _run(self, wave: _Wave) -> None:
        try:
            records = [record for batch in wave.batches for record in batch.records]
            try:
                answers = list(await self.handler(records))
                if len(answers) != len(records):
                    raise TypeError(f"batch handler answered {len(answers)} for {len(records)}")
            except asyncio.CancelledError:
                for batch in wave.batches:
                    batch.answers.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - each batch of the wave gets it
                for batch in wave.batches:
                    if not batch.abandoned:
                        batch.answers.set_exception(exc)
                return
            at = 0
            for batch in wave.batches:
                if not batch.abandoned:
                    batch.answers.set_result(answers[at : at + len(batch.records)])
                at += len(batch.records)
        finally:
            self._running.discard(wave)
            self._start_waves()
