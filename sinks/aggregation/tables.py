"""SQLAlchemy Core tables of Data Aggregation, matching migrations ``0012`` and ``0015``.

- ``warehouse.events``: one row per canonical event, primary key ``(source, id)`` (the
  CloudEvents de-duplication key); the OTel body's nested parts as JSONB.
- ``warehouse.loader_offsets``: the next offset each loader group reads per partition,
  written in the same transaction as the rows it loaded (exactly once).
- ``aggregation_seen``: the ``(source, id)`` pairs the pipeline has published to the
  canonical topic (its de-duplication on the road); pruned past a retention over
  ``seen_at``.
- ``aggregation_sources``: DataSources (``poll``, ``stream``, ``bulk``) and their logic.
- ``aggregation_jobs``: IngestionJobs with their counts and progress.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from sinks.db import metadata

WAREHOUSE = "warehouse"

events = Table(
    "events",
    metadata,
    Column("source", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("subject", Text, nullable=True),
    Column("specversion", Text, nullable=False),
    Column("source_type", Text, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
    Column("actor_id", Text, nullable=True),
    Column("trace_id", Text, nullable=False),
    Column("tags", ARRAY(Text), nullable=False),
    Column("raw_ref", Text, nullable=True),
    Column("time_unix_nano", BigInteger, nullable=True),
    Column("observed_time_unix_nano", BigInteger, nullable=True),
    Column("severity_number", Integer, nullable=True),
    Column("severity_text", Text, nullable=True),
    Column("body", JSONB, nullable=True),
    Column("resource", JSONB, nullable=False),
    Column("attributes", JSONB, nullable=False),
    Column("log_trace_id", Text, nullable=True),
    Column("log_span_id", Text, nullable=True),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("source", "id", name="pk_warehouse_events"),
    # migration 0016: run health, the home card and the ingestion figures read the last
    # minutes by ingested_at; without it each page scans the whole table.
    Index("ix_warehouse_events_ingested_at", "ingested_at"),
    schema=WAREHOUSE,
)

loader_offsets = Table(
    "loader_offsets",
    metadata,
    Column("group_id", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("group_id", "topic", "partition", name="pk_loader_offsets"),
    schema=WAREHOUSE,
)

seen = Table(
    "aggregation_seen",
    metadata,
    Column("source", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("source", "id", name="pk_aggregation_seen"),
    Index("ix_aggregation_seen_seen_at", "seen_at"),  # migration 0015: the pruning's scan
)

sources = Table(
    "aggregation_sources",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("logic", Text, nullable=False),
    Column("logic_version", Integer, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("schedule_s", Integer, nullable=True),
    Column("paused", Boolean, nullable=False, server_default="false"),
    Column("token_hash", Text, nullable=True),
    Column("cursor", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("kind IN ('poll', 'stream', 'bulk')", name="ck_aggregation_sources_kind"),
)

jobs = Table(
    "aggregation_jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("source", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("records_in", BigInteger, nullable=False, server_default="0"),
    Column("records_out", BigInteger, nullable=False, server_default="0"),
    Column("records_failed", BigInteger, nullable=False, server_default="0"),
    Column("bytes_total", BigInteger, nullable=True),
    Column("bytes_done", BigInteger, nullable=False, server_default="0"),
    Column("errors", JSONB, nullable=False, server_default="[]"),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        "state IN ('running', 'succeeded', 'failed')", name="ck_aggregation_jobs_state"
    ),
)
