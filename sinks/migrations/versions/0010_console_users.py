"""console users: a password digest on ``user`` principals, and their sessions

- ``principals.password_hash``: the argon2id digest (PHC string) of a console user's password;
  a ``user`` row must have one (``ck_principals_user_password``), a token row has none.
- ``principals.password_changed_at``: when the password was last set (``synapseops users
  passwd`` also ends every session of the user).
- ``console_sessions``: one row per login. The cookie carries the row's random id, signed;
  the row is the truth: logout sets ``revoked_at``, disabling the user revokes all of its
  rows, and a row past ``expires_at`` is refused. Only the SHA-256 digest of the id is
  stored, so a read of the table cannot be replayed as a cookie.
- indexes on ``trace_id`` of ``runs``, ``settlements`` and ``dead_letters``: the
  console's lineage page finds every record of one trace.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_TRACED = ("runs", "settlements", "dead_letters")


def upgrade() -> None:
    op.add_column("principals", sa.Column("password_hash", sa.Text, nullable=True))
    op.add_column(
        "principals", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_check_constraint(
        "ck_principals_user_password",
        "principals",
        "kind <> 'user' OR password_hash IS NOT NULL",
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.LargeBinary, primary_key=True),
        sa.Column(
            "principal_id",
            sa.BigInteger,
            sa.ForeignKey("principals.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client", sa.Text, nullable=True),
    )
    op.create_index("ix_console_sessions_principal", "console_sessions", ["principal_id"])
    for table in _TRACED:
        op.create_index(f"ix_{table}_trace_id", table, ["trace_id"])


def downgrade() -> None:
    for table in _TRACED:
        op.drop_index(f"ix_{table}_trace_id", table_name=table)
    op.drop_index("ix_console_sessions_principal", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_constraint("ck_principals_user_password", "principals", type_="check")
    op.drop_column("principals", "password_changed_at")
    op.drop_column("principals", "password_hash")
