"""principals: named API tokens with roles (and, later, console users); webhook sources choose

- ``principals`` (see ``sinks/principals/tables.py``): kind token|user, roles, the token's
  public id and the SHA-256 digest of its secret, revocation kept for the audit trail;
- ``endpoints.signature_scheme`` loses its ``'none'`` default: NULL means "not chosen", and
  the webhook ingress refuses such an endpoint. A ``'none'`` that only came from the old
  default cannot be told apart from a chosen one, so the webhook sources that have it are
  set to NULL: they refuse deliveries until someone chooses (fail closed, said in the API).

Revision ID: 0007
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_ROLES = "'viewer', 'operator', 'approver', 'admin'"


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("roles", ARRAY(sa.Text), nullable=False),
        sa.Column("token_id", sa.Text, nullable=True, unique=True),
        sa.Column("secret_hash", sa.LargeBinary, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Text, nullable=True),
        sa.CheckConstraint("kind IN ('token', 'user')", name="ck_principals_kind"),
        sa.CheckConstraint(
            f"cardinality(roles) > 0 AND roles <@ ARRAY[{_ROLES}]::text[]",
            name="ck_principals_roles",
        ),
        sa.CheckConstraint(
            "kind <> 'token' OR (token_id IS NOT NULL AND secret_hash IS NOT NULL)",
            name="ck_principals_token_secret",
        ),
    )
    op.create_index(
        "uq_principals_live_name",
        "principals",
        ["kind", "name"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.alter_column("endpoints", "signature_scheme", nullable=True, server_default=None)
    op.execute(
        "UPDATE endpoints SET signature_scheme = NULL "
        "WHERE signature_scheme = 'none' AND direction = 'source' AND connector_id IN "
        "(SELECT id FROM connectors WHERE protocol = 'webhook')"
    )


def downgrade() -> None:
    op.execute("UPDATE endpoints SET signature_scheme = 'none' WHERE signature_scheme IS NULL")
    op.alter_column("endpoints", "signature_scheme", nullable=False, server_default="none")
    op.drop_index("uq_principals_live_name", table_name="principals")
    op.drop_table("principals")
