"""integration_config: one version number, bumped by every write to the flow configuration

The delivery worker keeps a catalog of the flows (endpoint → flows, targets, mappings,
credentials) in memory and asks once per batch whether it is still current: one read of this
row. Triggers bump it in the writing transaction itself, so a reader that sees the new number
also sees the write (a sequence would not: ``nextval`` is visible before the commit), and a
write made any way — the API, a script, psql — is seen. A poller saving its ``cursor`` (and
``updated_at``) on an endpoint is not a configuration change and does not bump it.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

CONFIGURATION = ("connectors", "credentials", "mappings", "mapping_versions", "flows")


def upgrade() -> None:
    op.create_table(
        "integration_config",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.CheckConstraint("id = 1", name="ck_integration_config_one_row"),
    )
    op.execute("INSERT INTO integration_config (id, version) VALUES (1, 1)")
    op.execute(
        """
        CREATE FUNCTION bump_integration_config() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE integration_config SET version = version + 1 WHERE id = 1;
            RETURN NULL;
        END $$
        """
    )
    for table in CONFIGURATION:
        op.execute(
            f"CREATE TRIGGER {table}_bump_config AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_integration_config()"
        )
    # Endpoints: per row, so an update that only moves a poller's cursor is not a change.
    op.execute(
        "CREATE TRIGGER endpoints_bump_config AFTER INSERT OR DELETE ON endpoints "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_integration_config()"
    )
    op.execute(
        "CREATE TRIGGER endpoints_bump_config_update AFTER UPDATE ON endpoints FOR EACH ROW "
        "WHEN ((to_jsonb(OLD) - 'cursor' - 'updated_at') "
        "IS DISTINCT FROM (to_jsonb(NEW) - 'cursor' - 'updated_at')) "
        "EXECUTE FUNCTION bump_integration_config()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER endpoints_bump_config_update ON endpoints")
    op.execute("DROP TRIGGER endpoints_bump_config ON endpoints")
    for table in CONFIGURATION:
        op.execute(f"DROP TRIGGER {table}_bump_config ON {table}")
    op.execute("DROP FUNCTION bump_integration_config()")
    op.drop_table("integration_config")
