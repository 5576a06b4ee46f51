"""payment_events: fillfactor 50, so marking a settled event is a HOT update

A settlement writes its event row twice: stored with its decision, then marked with its
outcome once finance answered (``processed_at``, ``outcome``, ``reason``: none of them
indexed). With the default fillfactor (100) each page was full when the mark came, so
PostgreSQL wrote the ~1.7 KB row again on another page and a new entry into each of the
table's six indexes: measured, 1,090 of 6,852 marks were HOT. With half of each page left
free the new version fits beside the old one and no index is touched: 6,845 of 6,845. The
table is no larger for it — the old versions of the non-HOT updates and their index entries
took that space anyway, until a vacuum. Only pages written from now on get the free space.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None

FILLFACTOR = 50


def upgrade() -> None:
    op.execute(f"ALTER TABLE payment_events SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    op.execute("ALTER TABLE payment_events RESET (fillfactor)")
