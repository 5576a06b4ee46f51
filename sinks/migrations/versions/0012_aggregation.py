"""Data Aggregation: the warehouse schema, its loader's offsets, data sources and jobs

- ``warehouse.events``: one row per canonical event, primary key ``(source, id)``; the OTel
  body's nested values (body, resource, attributes) as JSONB; where the row came from
  (topic/partition/offset of the canonical topic) and when it was loaded. An index on
  ``(source, ingested_at)`` serves the per-source health windows.
- ``warehouse.loader_offsets``: per loader group and partition, the next offset to read;
  written in the transaction that writes the rows (the loader's exactly-once).
- ``aggregation_seen``: ``(source, id)`` published to the canonical topic (de-duplication on
  the road), with when, so old keys can be pruned.
- ``aggregation_sources``, ``aggregation_jobs``: DataSources (a polled one keeps its cursor:
  ETag, newest event id, the poll interval the API asked for) and IngestionJobs.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = """
CREATE SCHEMA IF NOT EXISTS warehouse;
CREATE TABLE warehouse.events (
    source text NOT NULL,
    id text NOT NULL,
    type text NOT NULL,
    time timestamptz NOT NULL,
    subject text,
    specversion text NOT NULL,
    source_type text NOT NULL,
    ingested_at timestamptz NOT NULL,
    actor_id text,
    trace_id text NOT NULL,
    tags text[] NOT NULL,
    raw_ref text,
    time_unix_nano bigint,
    observed_time_unix_nano bigint,
    severity_number integer,
    severity_text text,
    body jsonb,
    resource jsonb NOT NULL,
    attributes jsonb NOT NULL,
    log_trace_id text,
    log_span_id text,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_warehouse_events PRIMARY KEY (source, id)
);
CREATE INDEX ix_warehouse_events_source_ingested ON warehouse.events (source, ingested_at);
CREATE TABLE warehouse.loader_offsets (
    group_id text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_loader_offsets PRIMARY KEY (group_id, topic, partition)
);
CREATE TABLE aggregation_seen (
    source text NOT NULL,
    id text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_aggregation_seen PRIMARY KEY (source, id)
);
CREATE TABLE aggregation_sources (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    kind text NOT NULL,
    logic text NOT NULL,
    logic_version integer NOT NULL,
    config jsonb NOT NULL,
    schedule_s integer,
    paused boolean NOT NULL DEFAULT false,
    token_hash text,
    cursor jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_aggregation_sources_kind CHECK (kind IN ('poll', 'stream', 'bulk'))
);
CREATE TABLE aggregation_jobs (
    id uuid PRIMARY KEY,
    source text NOT NULL,
    kind text NOT NULL,
    state text NOT NULL,
    records_in bigint NOT NULL DEFAULT 0,
    records_out bigint NOT NULL DEFAULT 0,
    records_failed bigint NOT NULL DEFAULT 0,
    bytes_total bigint,
    bytes_done bigint NOT NULL DEFAULT 0,
    errors jsonb NOT NULL DEFAULT '[]',
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CONSTRAINT ck_aggregation_jobs_state CHECK (state IN ('running', 'succeeded', 'failed'))
);
CREATE INDEX ix_aggregation_jobs_source_started ON aggregation_jobs (source, started_at);
"""

DOWNGRADE = """
DROP TABLE aggregation_jobs;
DROP TABLE aggregation_sources;
DROP TABLE aggregation_seen;
DROP TABLE warehouse.loader_offsets;
DROP TABLE warehouse.events;
DROP SCHEMA warehouse;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
