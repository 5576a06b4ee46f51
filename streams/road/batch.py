"""A batch of one partition's records through a pipeline: :func:`process_batch`.

The contract a pipeline gets (:data:`~streams.road.pipeline.BatchHandler`): the records of a
batch come from one partition in offset order, so per-key order is the order they are in; the
road splits a batch into consecutive runs of one message kind (a command between two events
stays between them) and gives each run to that kind's batch handler, or record by record to
its per-record handler when it has none. The batch handler answers one
:class:`~streams.road.pipeline.Outcome` or exception per record. Failures are classified like
raised ones and handed to the router together (one flush: the produces are in flight at once
and awaited together), so :func:`process_batch` returns when every failed record is durable on
its next hop — then, and only then, may the caller commit past the batch.

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
    Outcome,
    Pipeline,
    failure_kind,
    observe,
    process,
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
    durably handed to), in order. Like :func:`process`, only cancellation escapes."""
    results: list[Outcome | Hop] = []
    for kind, run in runs_of(pipeline, records):
        batch = pipeline.batch_handlers.get(kind) if kind is not None else None
        if batch is None:
            for record in run:
                results.append(await process(pipeline, record, router))
            continue
        results.extend(await _process_run(pipeline, run, router))
    return results


async def _process_run(
    pipeline: Pipeline, run: list[RoadRecord], router: FailureRouter
) -> list[Outcome | Hop]:
    kind = pipeline.kind_of(run[0])
    started = time.monotonic()
    try:
        answers = list(await pipeline.batch_handlers[kind](run))
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
        return [await process(pipeline, record, router) for record in run]
    seconds = (time.monotonic() - started) / len(run)
    results: list[Outcome | Hop | None] = [None] * len(run)
    routing: list[tuple[int, asyncio.Task[Hop]]] = []
    for index, (record, answer) in enumerate(zip(run, answers, strict=True)):
        if isinstance(answer, Outcome):
            results[index] = answer
            continue
        exc = (
            answer
            if isinstance(answer, BaseException)
            else TypeError(f"batch handler of {pipeline.name} answered {type(answer).__name__}")
        )
        failure = failure_kind(pipeline, exc)
        if failure == "rejected":
            results[index] = Outcome("rejected", str(exc))
            continue
        task = asyncio.ensure_future(route_until_durable(pipeline, record, exc, failure, router))
        routing.append((index, task))
    if routing:
        hops = await asyncio.gather(*(task for _, task in routing))
        for (index, _), hop in zip(routing, hops, strict=True):
            results[index] = hop
    done = [result for result in results if result is not None]
    for result in done:
        observe(pipeline, result, seconds)
    return done
