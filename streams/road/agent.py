"""A pipeline's main input as a Faust agent: one actor per assigned partition, micro-batches.

:func:`attach_pipeline` gives a pipeline one agent over its input topics with
``isolated_partitions=True``: Faust starts one actor per partition the worker is assigned
(and stops it when the partition is revoked), so partitions are handled concurrently while
each partition's records stay in offset order — per-key order holds. Each actor takes its
records in batches straight off its channel (:class:`~streams.road.intake.PartitionIntake`:
whatever is queued, up to ``SYNAPSEOPS_ROAD_BATCH_SIZE`` records, waiting at most
``SYNAPSEOPS_ROAD_BATCH_WITHIN_MS`` for more) and runs each batch through
:func:`~streams.road.batch.process_batch`.

Acking, i.e. what Faust may commit. Faust commits an offset once every record below it is
*acked*. The road acks a batch's events, in offset order, only after ``process_batch``
returned — every effect durable, every failed record durable on its next hop:

- Not ``take_events``: it acks its whole buffered list in a ``finally``, which also runs when
  the actor is cancelled mid-batch (a revoke, a stop: ``Stream.on_stop`` closes the
  generator), so records never handled would be committed and lost. The intake acks nothing
  by itself; a cancelled batch stays unacked and is redone by whoever reads the partition
  next. (Nor ``noack_take``, which was correct but slow: it moves events one by one through
  the stream's machinery, so its batches stayed at 1–8 records; see the intake.)
- faust-streaming #606 (an offset committed past a record still in flight) needs a later
  offset of a partition acked while an earlier one is not, which only concurrent actors on one
  partition do. Here a partition has one actor, it takes the next batch only after acking the
  last, and acks each batch lowest offset first: what is acked is always a prefix of what the
  partition delivered.
- A revoked partition finishes its batch: ``stream_wait_empty`` (Faust's default, kept) makes
  the rebalance wait until every event handed to an actor (tracked by the intake) is acked,
  then commits, and only then stops the partition's actor (by cancelling it, which the actor
  takes as its end: see ``run``). A worker stopping (SIGTERM) cancels its actors mid-batch
  instead: the batch in hand is abandoned, unacked, so nothing of it is committed.
"""

from __future__ import annotations

import asyncio

import faust

from streams.road import metrics
from streams.road.batch import process_batch
from streams.road.intake import PartitionIntake
from streams.road.pipeline import Pipeline
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from synapseops.settings import RoadSettings


def attach_pipeline(
    app: faust.App, pipeline: Pipeline, router: FailureRouter, road: RoadSettings
) -> None:
    """One Faust agent over the pipeline's inputs, an actor per partition (module docstring)."""
    source = app.topic(
        *pipeline.spec.inputs,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    size, within_s = road.batch_size, road.batch_within_ms / 1000
    batch_records = metrics.BATCH_RECORDS.labels(pipeline.name)

    async def run(stream: faust.StreamT[bytes]) -> None:
        intake = PartitionIntake(app, stream, size, within_s)
        try:
            async for batch in intake.batches():
                batch_records.observe(len(batch))
                records = [RoadRecord.from_faust(event) for event in batch]
                await process_batch(pipeline, records, router)
                intake.ack(batch)  # lowest offset first: acks stay a prefix (docstring)
        except asyncio.CancelledError:
            # Faust stops a revoked partition's actor by cancelling it, and restarts an actor
            # that raised — here one for a partition this worker no longer has, until its
            # supervisor gives up and exits the worker. Ending quietly is ending: the batch in
            # hand, if any, stays unacked.
            return
        finally:
            intake.close()

    app.agent(source, name=f"road.{pipeline.name}", isolated_partitions=True)(run)
