"""SQLAlchemy Core tables of the dead-letter store, matching migrations ``0002`` and ``0008``.

They hang off :data:`sinks.db.metadata` like every other table; the migration test compares
them with what the migrations build (:func:`sinks.migrate.declared_metadata`).
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
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from sinks.db import metadata

DEAD = "dead"
REPLAYED = "replayed"
DISCARDED = "discarded"
STATUSES = (DEAD, REPLAYED, DISCARDED)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("pipeline", Text, nullable=False),
    # Where the dead record sits: the identity of "one dead record" (stored exactly once).
    Column("dlq_topic", Text, nullable=False),
    Column("dlq_partition", Integer, nullable=False),
    Column("dlq_offset", BigInteger, nullable=False),
    Column("original_topic", Text, nullable=True),
    Column("original_partition", Integer, nullable=True),
    Column("original_offset", BigInteger, nullable=True),
    Column("original_timestamp", DateTime(timezone=True), nullable=True),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=True),
    # {name: text} for UTF-8 values, {name: {"base64": ...}} for the others.
    Column("headers", JSONB, nullable=False),
    Column("trace_id", Text, nullable=True),
    Column("error_kind", Text, nullable=True),
    Column("error_class", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("error_trace", Text, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("first_failed_at", DateTime(timezone=True), nullable=True),
    Column("dead_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False, server_default=DEAD),
    Column("replay_id", Text, nullable=True),
    Column("replay_count", Integer, nullable=False, server_default="0"),
    # Outbox flag: NULL until the dead_letter trigger for this row is durably on Kafka.
    Column("trigger_published_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # "pipeline|original topic|partition|offset|attempt": one failure, one row, however many
    # copies of it reached the DLQ topic. NULL without original coordinates (and before 0008).
    Column("failure_key", Text, nullable=True),
    # Why the row is minimal (headers/timestamps it could not read) or its trigger unsent.
    Column("store_error", Text, nullable=True),
    UniqueConstraint(
        "dlq_topic", "dlq_partition", "dlq_offset", name="uq_dead_letters_dlq_coordinates"
    ),
    UniqueConstraint("failure_key", name="uq_dead_letters_failure_key"),
    CheckConstraint("status IN ('dead', 'replayed', 'discarded')", name="ck_dead_letters_status"),
    Index("ix_dead_letters_pipeline_status_dead_at", "pipeline", "status", "dead_at"),
    Index("ix_dead_letters_error_class", "error_class"),
)

replays = Table(
    "replays",
    metadata,
    Column("replay_id", Text, primary_key=True),
    Column("idempotency_key", Text, nullable=True, unique=True),
    Column("filter", JSONB, nullable=False),
    Column("matched", Integer, nullable=False, server_default="0"),
    Column("replayed", Integer, nullable=False, server_default="0"),
    Column("dry_run", Boolean, nullable=False, server_default="false"),
    Column("requested_by", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # The answer given to the request; a repeat with the same Idempotency-Key gets it again.
    Column("response", JSONB, nullable=True),
    # The lease of the process running it: renewed every few seconds; a stale one (the
    # process died) may be taken over by a repeat of the request (sinks/dead_letters/replay.py).
    Column("lease_token", Text, nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
)
