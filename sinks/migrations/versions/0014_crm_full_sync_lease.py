"""crm: a full sync's lease, and one running full sync per mapping

``lease_until`` is set while a runner plans a full sync and hands its pairs over (renewed as
it goes), and cleared once every pair is handed over; a ``running`` row whose lease ran out
(its worker died) is taken over by the next runner. The partial unique index keeps two full
syncs of one mapping from running at once, whatever the runners do.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Before this index two runners could run one mapping's full syncs at once: all but the
    # newest running one of a mapping end as failed (their pairs went through the pipeline).
    op.execute(
        "UPDATE crm_full_syncs SET status = 'failed', finished_at = now(), updated_at = now(),"
        " error = 'ended by migration 0014: another full sync of this mapping was running'"
        " WHERE status = 'running' AND id NOT IN"
        " (SELECT max(id) FROM crm_full_syncs WHERE status = 'running' GROUP BY mapping_id)"
    )
    op.add_column(
        "crm_full_syncs", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "uq_crm_full_syncs_one_running",
        "crm_full_syncs",
        ["mapping_id"],
        unique=True,
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("uq_crm_full_syncs_one_running", table_name="crm_full_syncs")
    op.drop_column("crm_full_syncs", "lease_until")
