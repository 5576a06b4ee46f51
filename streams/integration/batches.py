"""Source events delivered a batch at a time: :class:`EventBatches`.

A batch (one partition's records, in offset order) is cut into chunks in which no source event
id repeats (a duplicate of an event waits for the chunk after: it then finds its Run). Per
chunk:

1. one transaction (in a thread): the catalog's version check (:class:`~streams.integration.
   catalog.FlowCatalog`, reloaded only when the configuration moved), then every Run of the
   chunk written ``running`` at once (:func:`~sinks.integration.run_batch.start_runs`; a pair
   already delivered is skipped);
2. the deliveries: to a Kafka target every record produced at once, in offset order, and
   awaited once; to an HTTP target concurrent across record keys and in offset order within
   one key (a key's events are one chain; at most :data:`MAX_IN_FLIGHT` sends at once);
3. one transaction writes every outcome (:func:`~sinks.integration.run_batch.finish_runs`).

One answer per record: its :class:`~streams.road.Outcome`, or the error it fails with — a
retryable one when any of its flows failed retryably, else the first fatal one (the other flows
still got the event; a retry skips those that succeeded).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy

from sinks.db import database_errors
from sinks.integration.run_batch import RunStart, Started, finish_runs, start_runs
from streams.integration.catalog import FlowCatalog, FlowPlan
from streams.integration.delivery import SourceEvent, source_event
from streams.integration.kafka_target import KafkaTarget
from streams.integration.targets import Sent, Targets
from streams.road import Outcome, RoadRecord
from synapseops.errors import RetryableError
from synapseops.ids import trace_id_of

Answer = Outcome | BaseException
# Sends in flight at once for one batch: enough to hide a target's latency, few enough not to
# open hundreds of connections to one target.
MAX_IN_FLIGHT = 64


@dataclass(frozen=True)
class Job:
    """One flow's delivery of one event (``index``: its record in the batch)."""

    index: int
    plan: FlowPlan
    event: SourceEvent
    attempt: int
    fresh_attempt: bool
    rerun_of: int | None = None

    def start(self) -> RunStart:
        return RunStart(
            flow_id=self.plan.flow_id,
            event=self.event,
            attempt=self.attempt,
            mapping_version=self.plan.mapping_version,
            trace_id=trace_id_of(self.event.traceparent),
            fresh_attempt=self.fresh_attempt,
            rerun_of=self.rerun_of,
        )


class EventBatches:
    def __init__(self, engine: sqlalchemy.Engine, catalog: FlowCatalog, targets: Targets) -> None:
        self.engine = engine
        self.catalog = catalog
        self.targets = targets

    async def deliver(self, records: Sequence[RoadRecord]) -> list[Answer]:
        """One answer per record of ``records`` (the batch contract of :mod:`streams.road`)."""
        answers: list[Answer | None] = [None] * len(records)
        chunk: list[tuple[int, SourceEvent]] = []
        ids: set[str] = set()  # the chunk's event ids
        for index, record in enumerate(records):
            try:
                event = source_event(record)
            except Exception as exc:
                answers[index] = exc
                continue
            if event.event_id in ids:
                await self._chunk(records, chunk, answers)
                chunk, ids = [], set()
            chunk.append((index, event))
            ids.add(event.event_id)
        if chunk:
            await self._chunk(records, chunk, answers)
        return [answer if answer is not None else Outcome("skipped") for answer in answers]

    async def _chunk(
        self,
        records: Sequence[RoadRecord],
        chunk: list[tuple[int, SourceEvent]],
        answers: list[Answer | None],
    ) -> None:
        jobs, started = await asyncio.to_thread(self._prepare, records, chunk, answers)
        sent = await self.send_all(jobs, started)
        await asyncio.to_thread(
            finish_runs, self.engine, [one.finish for one in sent if one is not None]
        )
        flows: dict[int, list[tuple[Started | None, Sent | None]]] = {}
        for job, run, one in zip(jobs, started, sent, strict=True):
            flows.setdefault(job.index, []).append((run, one))
        for index, _ in chunk:
            if answers[index] is None:
                answers[index] = _answer(flows.get(index, []))

    def _prepare(
        self,
        records: Sequence[RoadRecord],
        chunk: list[tuple[int, SourceEvent]],
        answers: list[Answer | None],
    ) -> tuple[list[Job], list[Started | None]]:
        jobs: list[Job] = []
        with database_errors("runs: start"), self.engine.begin() as conn:
            self.catalog.refresh(conn)
            for index, event in chunk:
                plans = self.catalog.plans_for(event)
                problem = next((plan.problem for plan in plans if plan.problem), None)
                if not plans:
                    answers[index] = Outcome(
                        "skipped", f"no enabled flow for {event.connector}/{event.endpoint}"
                    )
                elif problem is not None:
                    answers[index] = problem  # as before the catalog: no Run, the reason
                else:
                    history = records[index].history
                    jobs += [
                        Job(index, plan, event, history.attempt + 1, history.replay_count > 0)
                        for plan in plans
                    ]
            started = start_runs(conn, [job.start() for job in jobs])
        return jobs, started

    def start_one(self, job: Job) -> Started | None:
        """The Run of a single job (a re-run), in a transaction of its own."""
        with database_errors("runs: start"), self.engine.begin() as conn:
            return start_runs(conn, [job.start()])[0]

    async def send_all(
        self, jobs: Sequence[Job], started: Sequence[Started | None]
    ) -> list[Sent | None]:
        """Every started job sent: to a Kafka target all at once, in order (one produce call
        for the lot, :meth:`Targets.send_kafka`); to an HTTP target key by key in order, the
        keys concurrently."""
        sent: list[Sent | None] = [None] * len(jobs)
        chains: dict[object, list[int]] = {}
        produced: list[tuple[int, tuple[FlowPlan, SourceEvent, Started]]] = []
        for position, (job, run) in enumerate(zip(jobs, started, strict=True)):
            if run is None:
                continue
            if isinstance(job.plan.target, KafkaTarget):
                produced.append((position, (job.plan, job.event, run)))
            else:
                # No key, no order to keep: such an event is a chain of its own.
                key = job.event.entity_key if job.event.entity_key is not None else object()
                chains.setdefault(key, []).append(position)
        gate = asyncio.Semaphore(MAX_IN_FLIGHT)

        async def chain(positions: list[int]) -> None:
            for position in positions:
                run = started[position]
                assert run is not None
                async with gate:
                    sent[position] = await self.targets.send(
                        jobs[position].plan, jobs[position].event, run
                    )

        async def produce() -> None:
            answers = await self.targets.send_kafka([one for _, one in produced])
            for (position, _), answer in zip(produced, answers, strict=True):
                sent[position] = answer

        await asyncio.gather(produce(), *(chain(positions) for positions in chains.values()))
        return sent


def _answer(flows: list[tuple[Started | None, Sent | None]]) -> Answer:
    failures = [one.failure for _, one in flows if one is not None and one.failure is not None]
    retryable = next((exc for exc in failures if isinstance(exc, RetryableError)), None)
    if retryable is not None or failures:
        return retryable or failures[0]
    done = sum(1 for run, _ in flows if run is not None)
    return Outcome("done" if done else "skipped", f"{done} of {len(flows)} flow(s) delivered")
