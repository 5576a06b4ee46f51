"""inbound_events: every accepted event, deduplicated (undecodable ones go the dead-letter road)

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("entity_key", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=True),
        sa.Column("trace_id", sa.Text, nullable=True),
        sa.Column("traceparent", sa.Text, nullable=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("payload", JSONB, nullable=True),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        # The source's own event id is the de-duplication key (docs/ARCHITECTURE.md, road 2).
        sa.UniqueConstraint("source", "event_id", name="uq_inbound_events_source_event_id"),
    )
    op.create_index("ix_inbound_events_received_at", "inbound_events", ["received_at"])
    op.create_index("ix_inbound_events_trace_id", "inbound_events", ["trace_id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_events_trace_id", table_name="inbound_events")
    op.drop_index("ix_inbound_events_received_at", table_name="inbound_events")
    op.drop_table("inbound_events")
