"""runs: at most one succeeded Run per flow and source event; 'duplicate' for the others

Two attempts of one event can race (a record redelivered after a crash while its retry-tier
copy is due): the target absorbs the second call through the Idempotency-Key, and this index
makes the Run log say so instead of showing two deliveries.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_constraint("ck_runs_status", "runs", type_="check")
    op.create_check_constraint(
        "ck_runs_status",
        "runs",
        "status IN ('running', 'succeeded', 'failed', 'dead', 'duplicate')",
    )
    op.create_index(
        "uq_runs_one_success",
        "runs",
        ["flow_id", "source_event_id"],
        unique=True,
        postgresql_where="status = 'succeeded'",
    )


def downgrade() -> None:
    op.drop_index("uq_runs_one_success", table_name="runs")
    op.drop_constraint("ck_runs_status", "runs", type_="check")
    op.create_check_constraint(
        "ck_runs_status", "runs", "status IN ('running', 'succeeded', 'failed', 'dead')"
    )
