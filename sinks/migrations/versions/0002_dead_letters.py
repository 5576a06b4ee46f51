"""dead_letters (the dead-letter store) and replays (one row per replay request)

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("pipeline", sa.Text, nullable=False),
        sa.Column("dlq_topic", sa.Text, nullable=False),
        sa.Column("dlq_partition", sa.Integer, nullable=False),
        sa.Column("dlq_offset", sa.BigInteger, nullable=False),
        sa.Column("original_topic", sa.Text, nullable=True),
        sa.Column("original_partition", sa.Integer, nullable=True),
        sa.Column("original_offset", sa.BigInteger, nullable=True),
        sa.Column("original_timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("value", sa.LargeBinary, nullable=True),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=True),
        sa.Column("error_kind", sa.Text, nullable=True),
        sa.Column("error_class", sa.Text, nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("error_trace", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="dead"),
        sa.Column("replay_id", sa.Text, nullable=True),
        sa.Column("replay_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("trigger_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        # One row per dead record, however often the dead-letter topic is redelivered.
        sa.UniqueConstraint(
            "dlq_topic", "dlq_partition", "dlq_offset", name="uq_dead_letters_dlq_coordinates"
        ),
        sa.CheckConstraint(
            "status IN ('dead', 'replayed', 'discarded')", name="ck_dead_letters_status"
        ),
    )
    # The console's list and the replay filter: newest dead letters of a pipeline by status.
    op.create_index(
        "ix_dead_letters_pipeline_status_dead_at",
        "dead_letters",
        ["pipeline", "status", "dead_at"],
    )
    op.create_index("ix_dead_letters_error_class", "dead_letters", ["error_class"])

    op.create_table(
        "replays",
        sa.Column("replay_id", sa.Text, primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=True, unique=True),
        sa.Column("filter", JSONB, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False, server_default="0"),
        sa.Column("replayed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("requested_by", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response", JSONB, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("replays")
    op.drop_index("ix_dead_letters_error_class", table_name="dead_letters")
    op.drop_index("ix_dead_letters_pipeline_status_dead_at", table_name="dead_letters")
    op.drop_table("dead_letters")
