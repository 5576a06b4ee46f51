"""settlements.finance_requested_at: when finance was first asked to book the entry

A booking of an entry that has it is a re-post: the earlier call's outcome is unknown, so the
gateway looks the entry up at finance before posting again (sinks/payments/finance.py), instead of
trusting finance to still hold the Idempotency-Key. Entries asked before this migration are
recognised by their audit trail.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "settlements", sa.Column("finance_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        """
        UPDATE settlements AS s SET finance_requested_at = s.updated_at
        WHERE EXISTS (
            SELECT 1 FROM settlement_audit AS a
            WHERE a.settlement_id = s.settlement_id
              AND a.action IN ('settlement_requested', 'approved')
        )
        """
    )


def downgrade() -> None:
    op.drop_column("settlements", "finance_requested_at")
