"""crm: platforms, field mappings, sync states, record links and conflicts

See ``sinks/crm/tables.py`` for what each table holds.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    default = None if nullable else sa.func.now()
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def _json(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))


def _count(name: str, default: str = "0") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.BigInteger, nullable=False, server_default=sa.text(default))


def _mapping_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "mapping_id",
        sa.BigInteger,
        sa.ForeignKey("crm_mappings.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "crm_platforms",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("workspace_id", sa.Text, nullable=True),
        sa.Column("own_origin", sa.Text, nullable=False),
        sa.Column("credential_ciphertext", sa.LargeBinary, nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.CheckConstraint("kind IN ('salesforce', 'hubspot')", name="ck_crm_platforms_kind"),
    )
    op.create_table(
        "crm_mappings",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column(
            "salesforce_platform_id",
            sa.BigInteger,
            sa.ForeignKey("crm_platforms.id"),
            nullable=False,
        ),
        sa.Column(
            "hubspot_platform_id", sa.BigInteger, sa.ForeignKey("crm_platforms.id"), nullable=False
        ),
        sa.Column("spec", JSONB, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("poll_interval_s", sa.Float, nullable=False, server_default=sa.text("2")),
        _at("created_at"),
        _at("updated_at"),
    )
    op.create_table(
        "crm_sync_states",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        _mapping_fk(),
        sa.Column("side", sa.Text, nullable=False),
        sa.Column("cursor", sa.Text, nullable=True),
        _at("last_polled_at", nullable=True),
        _at("last_synced_at", nullable=True),
        _count("read_count"),
        _count("own_skipped"),
        _count("written"),
        _count("skipped"),
        _count("failed"),
        _json("skipped_reasons"),
        sa.UniqueConstraint("mapping_id", "side", name="uq_crm_sync_states_side"),
        sa.CheckConstraint("side IN ('salesforce', 'hubspot')", name="ck_crm_sync_states_side"),
    )
    op.create_table(
        "crm_links",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        _mapping_fk(),
        sa.Column("salesforce_id", sa.Text, nullable=True),
        sa.Column("hubspot_id", sa.Text, nullable=True),
        sa.Column("match_value", sa.Text, nullable=True),
        _json("salesforce_values"),
        _json("hubspot_values"),
        sa.Column("salesforce_hash", sa.Text, nullable=True),
        sa.Column("hubspot_hash", sa.Text, nullable=True),
        _count("salesforce_watermark", "-1"),
        _count("hubspot_watermark", "-1"),
        _at("deleted_at", nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        _at("last_synced_at", nullable=True),
        _at("created_at"),
        sa.UniqueConstraint("mapping_id", "salesforce_id", name="uq_crm_links_salesforce"),
        sa.UniqueConstraint("mapping_id", "hubspot_id", name="uq_crm_links_hubspot"),
    )
    op.create_table(
        "crm_conflicts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        _mapping_fk(),
        sa.Column(
            "link_id",
            sa.BigInteger,
            sa.ForeignKey("crm_links.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("salesforce_value", sa.Text, nullable=True),
        sa.Column("hubspot_value", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'open'")),
        sa.Column("choice", sa.Text, nullable=True),
        sa.Column("resolved_by", sa.Text, nullable=True),
        _at("opened_at"),
        _at("resolved_at", nullable=True),
        sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_crm_conflicts_status"),
    )
    op.create_index(
        "uq_crm_conflicts_one_open",
        "crm_conflicts",
        ["link_id", "field"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "crm_full_syncs",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        _mapping_fk(),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'queued'")),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.text("false")),
        _count("total"),
        _count("done"),
        _json("planned"),
        _json("samples"),
        _json("outcomes"),
        sa.Column("error", sa.Text, nullable=True),
        _at("created_at"),
        _at("started_at", nullable=True),
        _at("finished_at", nullable=True),
        _at("updated_at"),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name="ck_crm_full_syncs_status",
        ),
    )
    op.create_index("ix_crm_full_syncs_status", "crm_full_syncs", ["status", "id"])


def downgrade() -> None:
    for table in (
        "crm_full_syncs",
        "crm_conflicts",
        "crm_links",
        "crm_sync_states",
        "crm_mappings",
        "crm_platforms",
    ):
        op.drop_table(table)
