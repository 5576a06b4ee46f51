"""dead letters: one row per failure, a reason for rows stored minimally; replay leases

- ``dead_letters.failure_key`` (``pipeline|original topic|partition|offset|attempt``, NULL
  when the record names no original coordinates) is unique: a hand-off retried after a lost
  delivery report puts the same failure on the dead-letter topic twice, and the second copy
  must find the first row instead of making a second dead letter (and a second trigger).
  Rows stored before this revision keep NULL: they may already hold such duplicates, and a
  migration must not fail on them or pick one to delete.
- ``dead_letters.store_error``: why a row was stored minimally (its headers or timestamps
  could not be read into the columns) or why its trigger could not be published.
- ``replays.lease_token`` / ``heartbeat_at``: a running replay renews its lease; a request
  with the same ``Idempotency-Key`` takes over a replay whose lease went stale (its process
  died), instead of answering 409 forever.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("failure_key", sa.Text, nullable=True))
    op.add_column("dead_letters", sa.Column("store_error", sa.Text, nullable=True))
    op.create_unique_constraint("uq_dead_letters_failure_key", "dead_letters", ["failure_key"])
    op.add_column("replays", sa.Column("lease_token", sa.Text, nullable=True))
    op.add_column("replays", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("replays", "heartbeat_at")
    op.drop_column("replays", "lease_token")
    op.drop_constraint("uq_dead_letters_failure_key", "dead_letters", type_="unique")
    op.drop_column("dead_letters", "store_error")
    op.drop_column("dead_letters", "failure_key")
