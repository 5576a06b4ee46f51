"""A Kafka-topic source's records delivered where they are read: :class:`TopicDelivery`.

Before, every record of a source topic was first produced to ``integration.events`` (its
routing headers stamped on a copy), and the delivery pipeline's Faust agent read it from
there: one produce and one consume per record that did nothing but move it, about a third of
the flow's cost at speed (docs/performance.md). Now the source consumer
(:mod:`streams.integration.kafka_source`) hands a partition's records straight to the delivery
pipeline, through the same road as every other record — :func:`~streams.road.batch.
process_batch` with the worker's :class:`~streams.road.router.FailureRouter` — and commits
their offsets only once it returned, i.e. once every effect, and every failed record's
hand-off to its retry tier or dead letter, is durable (the road's commit rule).

What the delivery sees is what it saw on ``integration.events``: the record's bytes and key
unchanged, its headers as :func:`~streams.integration.topic_sources.forwarded_headers` makes
them (every platform header a foreign record carried dropped, ours stamped: event id,
connector, endpoint, a continued trace), and the message kind ``integration.source-event`` — so
:mod:`streams.road.kinds` takes it as a source event wherever it later waits (a retry tier, a
replay), never as whatever kind a foreign header claimed. Its coordinates are its own:
a failure's history says it first failed at ``<source topic>/<partition>/<offset>``, which is
where it really is (the dead-letter console shows that place).

One source endpoint per record. A topic read by *several* source endpoints is still
forwarded, one copy per endpoint, by the forwarder: each copy then has coordinates of its own
on ``integration.events``, and so a failure of its own (a dead letter is one failure of one
record at one place: ``failure_key``, :mod:`sinks.dead_letters.rows`). Delivering the copies
here would give two endpoints' failures of one record one key, and the second dead letter
would be taken for the first.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.integration.topic_sources import TopicSource, forwarded_headers
from streams.road import metrics
from streams.road.batch import process_batch
from streams.road.pipeline import Pipeline
from streams.road.record import RoadRecord
from streams.road.router import FailureRouter
from synapseops import headers as kh
from topics.registry import INTEGRATION_EVENT


def as_source_events(records: Sequence[RoadRecord], source: TopicSource) -> list[RoadRecord]:
    """``records`` of ``source``'s topic as the delivery pipeline takes them (pure): same
    coordinates, bytes and key; the headers a forwarded copy would carry, and the kind."""
    # Built directly: dataclasses.replace costs ~3 us a record (it inspects the fields).
    return [
        RoadRecord(
            record.topic, record.partition, record.offset, record.timestamp_ms, record.key,
            record.value, kh.with_kind(forwarded_headers(record, source), INTEGRATION_EVENT),
        )
        for record in records
    ]  # fmt: skip


class TopicDelivery:
    """The delivery pipeline and the road's router, for records read off a source topic."""

    def __init__(self, pipeline: Pipeline, router: FailureRouter) -> None:
        self.pipeline = pipeline
        self.router = router
        self._batch_records = metrics.BATCH_RECORDS.labels(pipeline.name)

    async def deliver(self, records: Sequence[RoadRecord], source: TopicSource) -> None:
        """Deliver one partition's ``records`` (offset order) through their flows; returns
        once every effect and every failed record's next hop is durable. Raises only what
        the road could not route (the caller holds the partition and tries again)."""
        self._batch_records.observe(len(records))
        await process_batch(self.pipeline, as_source_events(records, source), self.router)
