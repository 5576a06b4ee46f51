"""warehouse.events: an index over ingested_at, for the pages that read the last minutes

Run health (``sinks.aggregation.health``), the console's home card and the per-source
figures all ask for the events ingested in the last N minutes. Measured with demo-sized data
(6,000 rows) each of those queries was a sequential scan of 13 ms, growing with the table:
a day of demo traffic would put the page past its 200 ms budget. One index on
``ingested_at`` serves both shapes (all sources, and one source within the window: the
window is small). ``ingested_at`` grows with time, so the loader's inserts append to the
index's right edge. Built ``CONCURRENTLY``: the loader keeps writing while it builds.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None

INDEX = "ix_warehouse_events_ingested_at"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "events",
            ["ingested_at"],
            schema="warehouse",
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            INDEX,
            table_name="events",
            schema="warehouse",
            postgresql_concurrently=True,
            if_exists=True,
        )
