"""aggregation_seen: an index over seen_at, for the pruning of old keys

``streams.aggregation.pruning`` deletes the keys older than
``SYNAPSEOPS_AGGREGATION_SEEN_RETENTION_DAYS`` in small batches; without this index each
batch would scan the whole table. Built ``CONCURRENTLY`` so that claims (inserts) go on
while it builds: no downtime on a table as large as the event history.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None

INDEX = "ix_aggregation_seen_seen_at"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "aggregation_seen",
            ["seen_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            INDEX, table_name="aggregation_seen", postgresql_concurrently=True, if_exists=True
        )
