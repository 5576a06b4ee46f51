"""A batch of one partition's records through a pipeline: :func:`process_batch`.

The contract a pipeline gets (:data:`~streams.road.pipeline.BatchHandler`): the records of a
batch come from one partition in offset order, so per-key order is the order they are in; the
road splits a batch into consecutive runs of one message kind (a command between two events
stays between them) and gives each run to that kind's batch handler, or record by record to
its per-record handler when it has none. The batch handler answers one
:class:`~streams.road.pipeline.Outcome` or exception per record. Failures are classified like
raised ones and handed to the router together (one flush: the produces are in flight at once
and awaited together, once per batch), so :func:`process_batch` returns when every failed
record is durable on its next hop — then, and only then, may the caller commit past the batch.

A record that fails alone fails alone: a batch handler that *raises* (rather than answering)
fails no record; the road runs each record of that run through the per-record handler, so a
poison record is dead-lettered by itself and its neighbours are handled as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streams.road.pipeline import (
    BatchHandler,
    Outcome,
    Pipeline,
    failure_kind,
    observe_all,
    route_until_durable,
)
from streams.road.record import RoadRecord
from streams.road.tiers import Hop
from synapseops.errors import UnknownKind
from synapseops.logging import get_logger

if TYPE_CHECKING:
    from streams.road.router import FailureRouter

log = get_logger(__name__)


def runs_of(
    pipeline: Pipeline, records: Sequence[RoadRecord]
) -> list[tuple[str | None, list[RoadRecord]]]:
    """``records`` cut into consecutive runs of one kind; a record of no known kind is a run of
    its own with kind ``None`` (:func:`process` dead-letters it with the reason)."""
    runs: list[tuple[str | None, list[RoadRecord]]] = []
    for record in records:
        try:
            kind: str | None = pipeline.kind_of(record)
        except UnknownKind:
            kind = None
        if kind is not None and runs and runs[-1][0] == kind:
            runs[-1][1].append(record)
        else:
            runs.append((kind, [record]))
    return runs


async def process_batch(
    pipeline: Pipeline, records: Sequence[RoadRecord], router: FailureRouter
) -> list[Outcome | Hop]:
    """One result per record of ``records`` (an :class:`Outcome`, or the :class:`Hop` it was
    durably handed to), in order. Like :func:`process`, only cancellation escapes.

    Every failure of the batch — of any run, batch handler or per-record handler alike — is
    routed at the end, all hand-offs in flight at once and awaited together.
    """
    answers: list[Answer] = []
    for kind, run in runs_of(pipeline, records):
        handler = pipeline.batch_handlers.get(kind) if kind is not None else None
        if handler is None:
            answers.extend(await _one_by_one(pipeline, run))
        else:
            answers.extend(await _batch_answers(pipeline, handler, run))
    return await _settle(pipeline, records, answers, router)


# What a record's handling came to (an Outcome or the exception it failed with), and the
# seconds it took.
Answer = tuple["Outcome | BaseException", float]


async def _one_by_one(pipeline: Pipeline, run: Sequence[RoadRecord]) -> list[Answer]:
    answers: list[Answer] = []
    for record in run:
        started = time.monotonic()
        answer: Outcome | BaseException
        try:
            answer = await pipeline.handle(record)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise  # shutting down: nothing of the batch is committed, all of it is redone
        except BaseException as exc:
            answer = exc
        answers.append((answer, time.monotonic() - started))
    return answers


async def _batch_answers(
    pipeline: Pipeline, handler: BatchHandler, run: list[RoadRecord]
) -> list[Answer]:
    started = time.monotonic()
    try:
        answers = list(await handler(run))
        if len(answers) != len(run):
            raise TypeError(
                f"batch handler of {pipeline.name} answered {len(answers)} for {len(run)} records"
            )
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise  # shutting down: nothing of the run is committed, all of it is redone
    except BaseException:
        log.warning(
            "batch handler failed as a whole; handling its records one by one",
            exc_info=True,
            extra=run[0].log_fields(pipeline.name) | {"batch_size": len(run)},
        )
        return await _one_by_one(pipeline, run)
    seconds = (time.monotonic() - started) / len(run)
    return [(answer, seconds) for answer in answers]


async def _settle(
    pipeline: Pipeline,
    records: Sequence[RoadRecord],
    answers: Sequence[Answer],
    router: FailureRouter,
) -> list[Outcome | Hop]:
    """Classify every failure, route the failed records together; one result per record."""
    results: list[Outcome | Hop | None] = [None] * len(records)
    routing: list[tuple[int, asyncio.Task[Hop]]] = []
    for index, (record, (answer, _)) in enumerate(zip(records, answers, strict=True)):
        if isinstance(answer, Outcome):
            results[index] = answer
            continue
        exc = (
            answer
            if isinstance(answer, BaseException)
            else TypeError(f"handler of {pipeline.name} answered {type(answer).__name__}")
        )
        failure = failure_kind(pipeline, exc)
        if failure == "rejected":
            results[index] = Outcome("rejected", str(exc))
            continue
        task = asyncio.ensure_future(route_until_durable(pipeline, record, exc, failure, router))
        routing.append((index, task))
    if routing:
        try:
            hops = await asyncio.gather(*(task for _, task in routing))
        except BaseException:
            for _, task in routing:  # cancelled: no hand-off keeps running without its batch
                task.cancel()
            raise
        for (index, _), hop in zip(routing, hops, strict=True):
            results[index] = hop
    done = [result for result in results if result is not None]
    observe_all(pipeline, [(r, s) for r, (_, s) in zip(done, answers, strict=True)])
    return done
