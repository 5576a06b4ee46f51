"""SQLAlchemy Core table of the event log, matching migration ``0001``: ``inbound_events``.

One row per accepted inbound event, unique by ``(source, event_id)`` (duplicates are absorbed).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from sinks.db import metadata

inbound_events = Table(
    "inbound_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("entity_key", Text, nullable=False),
    Column("event_type", Text, nullable=True),
    Column("trace_id", Text, nullable=True),
    Column("traceparent", Text, nullable=True),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("payload", JSONB, nullable=True),
    Column("headers", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("source", "event_id", name="uq_inbound_events_source_event_id"),
)
