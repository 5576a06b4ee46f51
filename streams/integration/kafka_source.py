"""Kafka-topic sources: a flow whose source endpoint is a topic gets that topic's records
forwarded onto ``integration.events`` with the headers that route them to their flows.

A source endpoint of a ``kafka`` connector names its topic in ``kafka_topic``. One consumer
(group ``<worker group>.integration-sources``) reads every such topic that has an enabled flow;
each record is produced to ``integration.events`` with its bytes and key unchanged, its own
headers kept, plus the connector/endpoint headers (the delivery pipeline fans an endpoint's
events out to every enabled flow of it). Its event id is the record's own
``synapseops-event-id`` when it has one, else ``<topic>/<partition>/<offset>`` — stable, so a
record forwarded twice after a crash is absorbed downstream. The offset is committed only
after the forwarded copy is durable.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from mode import Service
from sqlalchemy import select

from sinks.db import database_errors
from sinks.integration_tables import connectors, endpoints, flows
from streams.road.record import RoadRecord
from synapseops import headers as kh
from synapseops.errors import SynapseOpsError
from synapseops.ids import new_traceparent
from synapseops.kafka import AsyncProducer, consumer_config
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import INTEGRATION_EVENTS

log = get_logger(__name__)

REFRESH_S = 10.0
POLL_S = 0.5


@dataclass(frozen=True)
class TopicSource:
    connector: str
    endpoint: str
    topic: str


def topic_sources(engine: sqlalchemy.Engine) -> dict[str, list[TopicSource]]:
    """Topic → the source endpoints reading it (with at least one enabled flow)."""
    statement = (
        select(endpoints.c.name, endpoints.c.kafka_topic, connectors.c.name.label("connector"))
        .join(connectors, connectors.c.id == endpoints.c.connector_id)
        .where(
            connectors.c.protocol == "kafka",
            endpoints.c.direction == "source",
            endpoints.c.kafka_topic.is_not(None),
            select(flows.c.id)
            .where(flows.c.source_endpoint_id == endpoints.c.id, flows.c.enabled)
            .exists(),
        )
    )
    with database_errors("read kafka sources"), engine.connect() as conn:
        rows = conn.execute(statement).mappings().all()
    found: dict[str, list[TopicSource]] = {}
    for row in rows:
        source = TopicSource(str(row["connector"]), str(row["name"]), str(row["kafka_topic"]))
        found.setdefault(source.topic, []).append(source)
    return found


def forwarded_headers(record: RoadRecord, source: TopicSource) -> list[tuple[str, bytes]]:
    """The record's own headers (minus ones we set) plus the routing headers (pure)."""
    own = kh.to_map(record.headers)
    event_id = own.get(kh.EVENT_ID) or f"{record.topic}/{record.partition}/{record.offset}"
    ours = {kh.EVENT_ID, kh.CONNECTOR, kh.ENDPOINT, kh.FLOW_ID, kh.SOURCE}
    kept = [(name, value) for name, value in record.headers if name not in ours]
    if kh.TRACEPARENT not in own:
        kept.append((kh.TRACEPARENT, new_traceparent().encode()))
    return [
        *kept,
        (kh.EVENT_ID, event_id.encode()),
        (kh.SOURCE, source.connector.encode()),
        (kh.CONNECTOR, source.connector.encode()),
        (kh.ENDPOINT, source.endpoint.encode()),
    ]


class KafkaSourceForwarder(Service):
    """Forwards the records of every Kafka-topic source onto ``integration.events``."""

    def __init__(
        self,
        settings: Settings,
        engine: sqlalchemy.Engine,
        producer: AsyncProducer,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.engine = engine
        self.producer = producer
        self.group_id = f"{settings.worker.group_id}.integration-sources"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-source")

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    @Service.task
    async def _forward_forever(self) -> None:
        consumer: Consumer | None = None
        sources: dict[str, list[TopicSource]] = {}
        listed_at = -REFRESH_S
        loop = asyncio.get_running_loop()
        try:
            while not self.should_stop:
                if loop.time() - listed_at >= REFRESH_S:
                    listed_at = loop.time()
                    try:
                        fresh = await asyncio.to_thread(topic_sources, self.engine)
                    except SynapseOpsError as exc:
                        log.warning("kafka sources not read", extra={"error": str(exc)})
                        fresh = sources
                    if sorted(fresh) != sorted(sources) or consumer is None:
                        sources = fresh
                        if consumer is not None:
                            await self._call(consumer.close)
                            consumer = None
                        if sources:
                            config = consumer_config(self.settings.kafka, self.group_id)
                            consumer = await self._call(Consumer, config)
                            await self._call(consumer.subscribe, sorted(sources))
                    sources = fresh
                if consumer is None:
                    await self.sleep(POLL_S)
                    continue
                message: Message | None = await self._call(consumer.poll, POLL_S)
                if message is None or message.error() is not None:
                    continue
                try:
                    await self._forward(consumer, message, sources)
                except SynapseOpsError as exc:
                    # Not committed: a fresh consumer re-reads it from the committed offset.
                    log.warning("kafka source not forwarded", extra={"error": str(exc)})
                    await self._call(consumer.close)
                    consumer = None
                    listed_at = loop.time() - REFRESH_S + 1.0
        finally:
            if consumer is not None:
                await self._call(consumer.close)
            self._executor.shutdown(wait=False)

    async def _forward(
        self, consumer: Consumer, message: Message, sources: dict[str, list[TopicSource]]
    ) -> None:
        record = RoadRecord.from_confluent(message)
        for source in sources.get(record.topic, []):
            await self.producer.send(
                INTEGRATION_EVENTS.name,
                record.value,
                key=record.key,
                headers=forwarded_headers(record, source),
            )
        offset = TopicPartition(record.topic, record.partition, record.offset + 1)
        try:
            await self._call(consumer.commit, offsets=[offset], asynchronous=False)
        except KafkaException as exc:
            # A commit lost to a rebalance only means the record is forwarded again.
            log.warning("kafka source commit failed", extra={"error": str(exc)})


def kafka_sources(
    settings: Settings, engine: sqlalchemy.Engine, producer: AsyncProducer
) -> list[Service]:
    return [KafkaSourceForwarder(settings, engine, producer)]
