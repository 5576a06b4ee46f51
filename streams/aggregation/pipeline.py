"""The transformation pipeline: source payloads → canonical events on the canonical topic.

Inputs: ``aggregation.raw`` (payloads of every data source, the DataSource and its logic in
headers) and ``market.ticks`` (a stream source of its own: logic ``market``). Per batch of one
partition (:mod:`streams.road.batch`): every payload through its TransformationLogic (pure),
its events' ``(source, id)`` claimed in PostgreSQL (:mod:`sinks.aggregation.seen`: the ones
published before are skipped as duplicates), the new ones produced to
``synapseops.canonical.events`` in Avro (Confluent wire format, CloudEvents binary-mode
``ce_*`` headers), the claim committed once the broker has them. A payload the logic cannot
transform is a :class:`~synapseops.errors.PayloadUntransformable`: the road dead-letters that
record with the reason, its neighbours go on.

Latency per source (observed − event time) is a histogram here; the per-minute windows and
percentiles are read from ``warehouse.events``, which holds both times of every event
(``sinks/aggregation/health.py``), so no second store has to agree with the warehouse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from schemas import CANONICAL_EVENT, AvroSerde, schema_store
from schemas.models import CanonicalEvent
from sinks.aggregation.seen import Claim, Key, SeenKeys
from streams.aggregation import metrics
from streams.aggregation.logic.common import Context
from streams.aggregation.transform import transform
from streams.polling import Poller
from streams.road import Outcome, Pipeline, RoadRecord
from streams.supervision import TaskSpec
from synapseops import headers as h
from synapseops.errors import PayloadUntransformable, SynapseOpsError
from synapseops.ids import child_traceparent, new_traceparent, trace_id_of
from synapseops.kafka import AsyncProducer, Outgoing
from topics.registry import (
    AGGREGATION_PAYLOAD,
    AGGREGATION_TRANSFORM,
    CANONICAL_EVENTS,
    MARKET_TICK,
    default_kind,
)

if TYPE_CHECKING:
    from streams.bootstrap import Runtime

Answer = Outcome | BaseException
# What a record's kind says when its headers do not: market ticks are their own source.
DEFAULTS = {MARKET_TICK: ("market", "market", "stream"), AGGREGATION_PAYLOAD: (None, None, None)}


def context_of(record: RoadRecord, kind: str) -> tuple[str, Context]:
    """The logic name and the :class:`Context` of a record, from its headers."""
    found = h.IngressHeaders.read(record.headers)
    default_source, default_logic, default_type = DEFAULTS[kind]
    source = found.source or default_source
    logic = found.get(h.AGGREGATION_LOGIC) or default_logic
    if source is None or logic is None:
        raise PayloadUntransformable(
            f"a payload needs the {h.SOURCE} and {h.AGGREGATION_LOGIC} headers", logic=logic or ""
        )
    traceparent = found.traceparent or new_traceparent()
    context = Context(
        source=source,
        source_type=found.get(h.SOURCE_TYPE) or default_type or "stream",
        ingested_at=found.received_at(record.timestamp_ms).astimezone(UTC),
        trace_id=trace_id_of(traceparent) or new_traceparent()[3:35],
        raw_ref=f"{record.topic}/{record.partition}/{record.offset}",
    )
    return logic, context


def outgoing(event: CanonicalEvent, value: bytes, traceparent: str | None) -> Outgoing:
    """The canonical record: keyed by source and subject (one entity's events in order)."""
    headers = [
        ("ce_specversion", event.specversion.encode()),
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_type", event.type.encode()),
        ("ce_time", event.time.isoformat().encode()),
        (h.CONTENT_TYPE, b"application/avro"),
        (h.TRACEPARENT, child_traceparent(traceparent).encode()),
    ]
    if event.subject is not None:
        headers.append(("ce_subject", event.subject.encode()))
    key = f"{event.source}/{event.subject or event.id}".encode()
    return Outgoing(CANONICAL_EVENTS.name, value, key=key, headers=headers)


class Aggregation:
    """Transforms, de-duplicates and publishes; the road handles every failure."""

    def __init__(self, seen: SeenKeys, producer: AsyncProducer, serde: AvroSerde) -> None:
        self.seen = seen
        self.producer = producer
        self.serde = serde

    def _transformed(self, record: RoadRecord) -> list[CanonicalEvent]:
        # On a retry tier the kind header says what the record is; on an input, its topic.
        kind = h.message_kind(record.headers) or default_kind(record.topic)
        logic, context = context_of(
            record, MARKET_TICK if kind == MARKET_TICK else AGGREGATION_PAYLOAD
        )
        try:
            return transform(logic, record.value, context)
        except PayloadUntransformable:
            metrics.PAYLOADS_FAILED.labels(logic).inc()
            raise

    async def handle_batch(self, records: Sequence[RoadRecord]) -> list[Answer]:
        """One answer per record: done, skipped (every event a duplicate) or its error."""
        produced: list[list[CanonicalEvent] | BaseException] = []
        for record in records:
            try:
                produced.append(self._transformed(record))
            except SynapseOpsError as exc:
                produced.append(exc)
        keys: list[Key] = [
            (event.source, event.id)
            for events in produced
            if not isinstance(events, BaseException)
            for event in events
        ]
        claim = await asyncio.to_thread(self.seen.claim, keys)
        try:
            answers = await self._publish(records, produced, claim)
        except BaseException:
            await asyncio.to_thread(self.seen.abort, claim)
            raise
        return answers

    async def _publish(
        self,
        records: Sequence[RoadRecord],
        produced: list[list[CanonicalEvent] | BaseException],
        claim: Claim,
    ) -> list[Answer]:
        sends: list[Outgoing] = []
        owners: list[tuple[int, CanonicalEvent]] = []
        answers: list[Answer] = [Outcome("skipped", "duplicate") for _ in records]
        taken: set[Key] = set()
        mine: dict[int, list[Key]] = {}
        for index, (record, events) in enumerate(zip(records, produced, strict=True)):
            if isinstance(events, BaseException):
                answers[index] = events
                continue
            traceparent = h.IngressHeaders.read(record.headers).traceparent
            for event in events:
                key = (event.source, event.id)
                if key not in claim.won or key in taken:
                    metrics.EVENTS.labels(event.source, "duplicate").inc()
                    continue
                try:
                    value = self.serde.encode(event.to_record())
                except SynapseOpsError as exc:
                    answers[index] = exc
                    break
                taken.add(key)
                mine.setdefault(index, []).append(key)
                sends.append(outgoing(event, value, traceparent))
                owners.append((index, event))
        deliveries = await self.producer.send_many(sends)
        failed: set[Key] = set()
        now = datetime.now(UTC)
        for (index, event), delivery in zip(owners, deliveries, strict=True):
            key = (event.source, event.id)
            if isinstance(delivery, BaseException):
                failed.add(key)
                answers[index] = delivery
                metrics.EVENTS.labels(event.source, "failed").inc()
                continue
            if not isinstance(answers[index], BaseException):
                answers[index] = Outcome("done", "published")
            metrics.EVENTS.labels(event.source, "published").inc()
            observed = min(event.ingested_at, now)
            metrics.LATENCY.labels(event.source).observe(
                max(0.0, (observed - event.time).total_seconds())
            )
        # A record with one failed event is retried whole: every key it claimed is released,
        # so the retry publishes them again rather than losing the failed one.
        for index, keys in mine.items():
            if isinstance(answers[index], BaseException):
                failed.update(keys)
        await asyncio.to_thread(self.seen.settle, claim, failed)
        return answers

    async def handle(self, record: RoadRecord) -> Outcome:
        (answer,) = await self.handle_batch([record])
        if isinstance(answer, BaseException):
            raise answer
        return answer


def pipelines(runtime: Runtime) -> list[Pipeline]:
    serde = AvroSerde(schema_store(runtime.settings.schema_registry), CANONICAL_EVENT)
    aggregation = Aggregation(SeenKeys(runtime.engine), runtime.producer, serde)
    handlers = {AGGREGATION_PAYLOAD: aggregation.handle, MARKET_TICK: aggregation.handle}
    batch = {AGGREGATION_PAYLOAD: aggregation.handle_batch, MARKET_TICK: aggregation.handle_batch}
    return [
        Pipeline.declared(AGGREGATION_TRANSFORM, handlers, runtime.settings, batch_handlers=batch)
    ]


def tasks(runtime: Runtime) -> list[TaskSpec]:
    """The GitHub poller (the shared poller over ``poll`` sources with logic ``github``),
    the market-data tick feed (off unless ``SYNAPSEOPS_AGGREGATION_TICKS_PER_S`` is set) and
    the pruning of old de-duplication keys."""
    from streams.aggregation.github_poll import GitHubSources
    from streams.aggregation.pruning import SeenPruner
    from streams.aggregation.ticks import TickFeed

    settings, engine, producer = runtime.settings, runtime.engine, runtime.producer
    return [
        TaskSpec(
            "github-poller", lambda: Poller(GitHubSources(engine, settings), engine, producer)
        ),
        TaskSpec("market-ticks", lambda: TickFeed(settings.aggregation, producer)),
        TaskSpec("seen-pruner", lambda: SeenPruner(SeenKeys(engine), settings.aggregation)),
    ]
