"""The event-log pipeline: every accepted inbound event, stored once in ``inbound_events``.

Topology apart from logic: :func:`~streams.event_log.rows.to_row` is the work, pure and typed;
:class:`EventLog` writes the row; :func:`pipelines` declares the pipeline to the reliability
road, which owns retries (database down → retry tiers) and dead letters (undecodable body,
missing headers → the dead-letter topic, then the ``dead_letters`` table).

Duplicates are absorbed by ``UNIQUE (source, event_id)``; a redelivered record after a crash
is therefore harmless.

The event log is a small platform pipeline rather than a business service, but it has what a
service has (an ingress route, a topic, a table, read routes), so it lives where a service
lives: ``streams/event_log/``, ``sinks/event_log/``, ``api/routes/event_log/``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import sqlalchemy

from sinks.db import TableSink
from sinks.event_log.tables import inbound_events
from streams.event_log.rows import to_row
from streams.road import Outcome, Pipeline, RoadRecord
from topics.registry import EVENT_LOG, INBOUND_EVENT

if TYPE_CHECKING:
    from streams.bootstrap import Runtime


class EventLog:
    """Writes inbound records to ``inbound_events``; the road handles every failure."""

    def __init__(self, events: TableSink) -> None:
        self.events = events

    @classmethod
    def from_engine(cls, engine: sqlalchemy.Engine) -> EventLog:
        return cls(TableSink(engine, inbound_events, conflict=("source", "event_id")))

    def store(self, record: RoadRecord) -> Outcome:
        """Decode and write one record (blocking). Raises the error tree on failure."""
        row = to_row(
            record.key,
            record.value,
            record.headers,
            record.topic,
            record.partition,
            record.offset,
            record.timestamp_ms,
        )
        if self.events.write_one(row.as_row()):
            return Outcome("done", "stored")
        return Outcome("skipped", "duplicate")

    async def handle(self, record: RoadRecord) -> Outcome:
        return await asyncio.to_thread(self.store, record)


def pipelines(runtime: Runtime) -> list[Pipeline]:
    event_log = EventLog.from_engine(runtime.engine)
    return [Pipeline.declared(EVENT_LOG, {INBOUND_EVENT: event_log.handle}, runtime.settings)]
