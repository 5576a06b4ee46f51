"""payment_events, settlements, settlement_attempts, settlement_audit (Payment Gateway)

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True, now: bool = False) -> sa.Column[Any]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if now else None,
    )


def upgrade() -> None:
    op.create_table(
        "payment_events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        # Stripe's evt_… id: one row per event however often it is delivered.
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("payment_id", sa.Text, nullable=True),
        sa.Column("settlement_id", sa.Text, nullable=True),
        sa.Column("event_type", sa.Text, nullable=False),
        _ts("created"),
        sa.Column("api_version", sa.Text, nullable=True),
        sa.Column("livemode", sa.Boolean, nullable=True),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("http_headers", JSONB, nullable=False),
        sa.Column("traceparent", sa.Text, nullable=True),
        sa.Column("trace_id", sa.Text, nullable=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        _ts("received_at", nullable=False),
        _ts("stored_at", nullable=False, now=True),
        _ts("processed_at"),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.UniqueConstraint("event_id", name="payment_events_event_id_key"),
    )
    op.create_index("ix_payment_events_payment_id", "payment_events", ["payment_id"])
    op.create_index("ix_payment_events_settlement_id", "payment_events", ["settlement_id"])
    op.create_index("ix_payment_events_received_at", "payment_events", ["received_at"])
    op.create_index("ix_payment_events_trace_id", "payment_events", ["trace_id"])

    op.create_table(
        "settlements",
        # Derived from Stripe's ids; also the finance Idempotency-Key.
        sa.Column("settlement_id", sa.Text, primary_key=True),
        sa.Column("payment_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("finance_reference", sa.Text, nullable=True),
        _ts("event_created"),
        sa.Column("last_event_id", sa.Text, nullable=True),
        sa.Column("trace_id", sa.Text, nullable=True),
        _ts("received_at"),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        _ts("settled_at"),
        sa.Column("approved_by", sa.Text, nullable=True),
        _ts("approved_at"),
        sa.Column("approval_decision", sa.Text, nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'pending_approval', 'settled', 'failed')",
            name="ck_settlements_state",
        ),
        sa.CheckConstraint("kind IN ('charge', 'refund', 'dispute')", name="ck_settlements_kind"),
        sa.CheckConstraint(
            "approval_decision IS NULL OR approval_decision IN ('approve', 'reject')",
            name="ck_settlements_approval_decision",
        ),
    )
    # The API lists by state, date and currency.
    op.create_index("ix_settlements_state", "settlements", ["state"])
    op.create_index("ix_settlements_created_at", "settlements", ["created_at"])
    op.create_index("ix_settlements_currency", "settlements", ["currency"])
    op.create_index("ix_settlements_payment_id", "settlements", ["payment_id"])

    op.create_table(
        "settlement_attempts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "settlement_id",
            sa.Text,
            sa.ForeignKey("settlements.settlement_id", name="fk_settlement_attempts_settlement"),
            nullable=False,
        ),
        sa.Column("event_id", sa.Text, nullable=True),
        _ts("started_at", nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("request", JSONB, nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error_class", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_settlement_attempts_settlement_id",
        "settlement_attempts",
        ["settlement_id", "started_at"],
    )

    op.create_table(
        "settlement_audit",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("settlement_id", sa.Text, nullable=False),
        sa.Column("payment_id", sa.Text, nullable=True),
        _ts("at", nullable=False, now=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("detail", JSONB, nullable=False),
    )
    op.create_index(
        "ix_settlement_audit_settlement_id", "settlement_audit", ["settlement_id", "at"]
    )
    op.create_index("ix_settlement_audit_payment_id", "settlement_audit", ["payment_id"])


def downgrade() -> None:
    op.drop_table("settlement_audit")
    op.drop_table("settlement_attempts")
    op.drop_table("settlements")
    op.drop_table("payment_events")
