"""API Integration: connectors, endpoints, credentials, versioned mappings, flows, runs

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EMPTY = sa.text("'{}'::jsonb")


def _timestamps(*names: str) -> list[sa.Column[Any]]:
    return [
        sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
        for name in names
    ]


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("protocol", sa.Text, nullable=False),
        sa.Column("base_url", sa.Text, nullable=True),
        sa.Column("config", JSONB, nullable=False, server_default=_EMPTY),
        *_timestamps("created_at", "updated_at"),
        sa.CheckConstraint(
            "protocol IN ('webhook', 'rest', 'kafka')", name="ck_connectors_protocol"
        ),
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("header_name", sa.Text, nullable=True),
        *_timestamps("created_at"),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('api_key', 'bearer', 'basic', 'signing_secret')", name="ck_credentials_kind"
        ),
    )
    op.create_table(
        "endpoints",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "connector_id",
            sa.BigInteger,
            sa.ForeignKey("connectors.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("direction", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=True),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("signature_scheme", sa.Text, nullable=False, server_default="none"),
        sa.Column("signature_header", sa.Text, nullable=True),
        sa.Column(
            "secret_credential_id",
            sa.BigInteger,
            sa.ForeignKey("credentials.id", ondelete="RESTRICT"),
            nullable=True,
        ),
        sa.Column("poll_interval_s", sa.Integer, nullable=True),
        sa.Column("cursor", JSONB, nullable=True),
        sa.Column("kafka_topic", sa.Text, nullable=True),
        sa.Column("config", JSONB, nullable=False, server_default=_EMPTY),
        *_timestamps("created_at", "updated_at"),
        sa.UniqueConstraint(
            "connector_id", "direction", "name", name="uq_endpoints_connector_name"
        ),
        sa.CheckConstraint("direction IN ('source', 'target')", name="ck_endpoints_direction"),
        sa.CheckConstraint(
            "signature_scheme IN ('shopify', 'standard_webhooks', 'hmac_hex', 'none')",
            name="ck_endpoints_signature",
        ),
        sa.CheckConstraint(
            "poll_interval_s IS NULL OR poll_interval_s > 0", name="ck_endpoints_poll"
        ),
    )
    op.create_table(
        "mappings",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=True),
        *_timestamps("created_at"),
    )
    op.create_table(
        "mapping_versions",
        sa.Column(
            "mapping_id",
            sa.BigInteger,
            sa.ForeignKey("mappings.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("rules", JSONB, nullable=False),
        *_timestamps("created_at"),
        sa.Column("created_by", sa.Text, nullable=True),
        sa.CheckConstraint("version >= 1", name="ck_mapping_versions_version"),
    )
    # A version a Run names must stay what it ran with: refuse every UPDATE, whoever asks.
    op.execute(
        """
        CREATE FUNCTION mapping_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'mapping version %/% is immutable; save a new version',
                OLD.mapping_id, OLD.version USING ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER mapping_versions_no_update BEFORE UPDATE ON mapping_versions "
        "FOR EACH ROW EXECUTE FUNCTION mapping_versions_immutable()"
    )
    op.create_table(
        "flows",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column(
            "source_endpoint_id",
            sa.BigInteger,
            sa.ForeignKey("endpoints.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column(
            "target_endpoint_id",
            sa.BigInteger,
            sa.ForeignKey("endpoints.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column(
            "credential_id",
            sa.BigInteger,
            sa.ForeignKey("credentials.id", ondelete="RESTRICT"),
            nullable=True,
        ),
        sa.Column(
            "mapping_id",
            sa.BigInteger,
            sa.ForeignKey("mappings.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("mapping_version", sa.Integer, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        *_timestamps("created_at", "updated_at"),
        sa.ForeignKeyConstraint(
            ["mapping_id", "mapping_version"],
            ["mapping_versions.mapping_id", "mapping_versions.version"],
            name="fk_flows_mapping_version",
            ondelete="RESTRICT",
        ),
    )
    op.create_index("ix_flows_source_endpoint", "flows", ["source_endpoint_id"])
    op.create_table(
        "run_bodies",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("content_type", sa.Text, nullable=True),
        *_timestamps("created_at"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "flow_id",
            sa.BigInteger,
            sa.ForeignKey("flows.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("source_event_id", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="running"),
        *_timestamps("started_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=True),
        sa.Column("mapping_version", sa.Integer, nullable=True),
        sa.Column("request", JSONB, nullable=True),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response", JSONB, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_class", sa.Text, nullable=True),
        sa.Column("failed_rule", sa.Text, nullable=True),
        sa.Column("body_ref", sa.BigInteger, sa.ForeignKey("run_bodies.id"), nullable=True),
        sa.Column(
            "response_body_ref", sa.BigInteger, sa.ForeignKey("run_bodies.id"), nullable=True
        ),
        sa.Column("rerun_of", sa.BigInteger, nullable=True),
        sa.Column("trace_id", sa.Text, nullable=True),
        sa.UniqueConstraint(
            "flow_id", "source_event_id", "attempt", name="uq_runs_flow_event_attempt"
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'dead')", name="ck_runs_status"
        ),
        sa.CheckConstraint("attempt >= 1", name="ck_runs_attempt"),
    )
    op.create_index("ix_runs_flow_started_at", "runs", ["flow_id", "started_at"])
    op.create_index("ix_runs_status_started_at", "runs", ["status", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_started_at", table_name="runs")
    op.drop_index("ix_runs_flow_started_at", table_name="runs")
    op.drop_table("runs")
    op.drop_table("run_bodies")
    op.drop_index("ix_flows_source_endpoint", table_name="flows")
    op.drop_table("flows")
    op.execute("DROP TRIGGER mapping_versions_no_update ON mapping_versions")
    op.execute("DROP FUNCTION mapping_versions_immutable()")
    op.drop_table("mapping_versions")
    op.drop_table("mappings")
    op.drop_table("endpoints")
    op.drop_table("credentials")
    op.drop_table("connectors")
