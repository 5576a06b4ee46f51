"""notifications: channels, versioned workflows, durable runs, sends, approvals, digests

The SaaS Notifications service's tables (sinks/notifications/tables.py says what each holds).
A run is unique per workflow and trigger ``dedup_key``; a send per idempotency key (run + step);
an approval per run and step; a digest per workflow, step, key and window.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

CHANNEL_KINDS = ("slack_bot", "slack_webhook", "teams_workflow", "email")
RUN_STATES = ("running", "waiting", "done", "failed")
SEND_STATES = ("sending", "sent", "failed")
APPROVAL_STATES = ("pending", "approved", "rejected", "expired")
_TABLES = (
    "notification_throttles",
    "notification_digests",
    "notification_approvals",
    "notification_sends",
    "notification_run_steps",
    "notification_runs",
    "notification_workflow_versions",
    "notification_workflows",
    "notification_channels",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("secret", sa.LargeBinary, nullable=True),
        sa.Column("rate_per_s", sa.Float, nullable=True),
        sa.Column(
            "fallback_channel_id",
            sa.BigInteger,
            sa.ForeignKey("notification_channels.id"),
            nullable=True,
        ),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="true"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(_in("kind", CHANNEL_KINDS), name="ck_notification_channels_kind"),
    )

    op.create_table(
        "notification_workflows",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("trigger_kind", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Index("ix_notification_workflows_kind", "trigger_kind"),
    )

    op.create_table(
        "notification_workflow_versions",
        sa.Column(
            "workflow_id", sa.BigInteger, sa.ForeignKey("notification_workflows.id"), nullable=False
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec", JSONB, nullable=False),  # {condition, steps}
        sa.Column("created_by", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("workflow_id", "version", name="pk_notification_workflow_versions"),
    )

    op.create_table(
        "notification_runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column(
            "workflow_id", sa.BigInteger, sa.ForeignKey("notification_workflows.id"), nullable=False
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("trigger_kind", sa.Text, nullable=False),
        sa.Column("subject_id", sa.Text, nullable=False),
        sa.Column("dedup_key", sa.Text, nullable=False),
        sa.Column("trigger", JSONB, nullable=False),
        sa.Column("context", JSONB, nullable=False, server_default="{}"),
        sa.Column("trace_id", sa.Text, nullable=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("step", sa.Integer, nullable=False, server_default="0"),
        sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_on", sa.Text, nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resume_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("workflow_id", "dedup_key", name="uq_notification_runs_dedup"),
        sa.CheckConstraint(_in("state", RUN_STATES), name="ck_notification_runs_state"),
        sa.Index("ix_notification_runs_due", "state", "wake_at"),
    )

    op.create_table(
        "notification_run_steps",
        sa.Column("run_id", sa.Text, sa.ForeignKey("notification_runs.id"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("detail", JSONB, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("run_id", "step", name="pk_notification_run_steps"),
    )

    op.create_table(
        "notification_sends",
        sa.Column("idempotency_key", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, nullable=True),  # NULL for a digest or a test message
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column(
            "channel_id", sa.BigInteger, sa.ForeignKey("notification_channels.id"), nullable=False
        ),
        sa.Column("channel_kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("receipt", JSONB, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("state", SEND_STATES), name="ck_notification_sends_state"),
        sa.Index("ix_notification_sends_run", "run_id"),
    )

    op.create_table(
        "notification_approvals",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, sa.ForeignKey("notification_runs.id"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("trigger_kind", sa.Text, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        # A large payment's approval is the settlement's own decision (see streams/notifications).
        sa.Column("settlement_id", sa.Text, nullable=True),
        sa.Column("payment_id", sa.Text, nullable=True),
        sa.Column("approvers", JSONB, nullable=False),  # {roles: [...], principals: [...]}
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("on_expiry", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="pending"),
        sa.Column("answered_by", sa.Text, nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("expiry_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("run_id", "step", name="uq_notification_approvals_step"),
        sa.CheckConstraint(_in("state", APPROVAL_STATES), name="ck_notification_approvals_state"),
        sa.Index("ix_notification_approvals_state", "state", "created_at"),
        sa.Index("ix_notification_approvals_settlement", "settlement_id"),
    )

    op.create_table(
        "notification_digests",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column(
            "workflow_id", sa.BigInteger, sa.ForeignKey("notification_workflows.id"), nullable=False
        ),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("template", JSONB, nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("items", JSONB, nullable=False, server_default="[]"),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flush_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint(
            "workflow_id", "step", "key", "window_end", name="uq_notification_digests"
        ),
        sa.Index("ix_notification_digests_open", "sent_at", "window_end"),
    )

    op.create_table(
        "notification_throttles",
        sa.Column(
            "workflow_id", sa.BigInteger, sa.ForeignKey("notification_workflows.id"), nullable=False
        ),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(
            "workflow_id", "step", "key", "window_start", name="pk_notification_throttles"
        ),
    )


def downgrade() -> None:
    for table in _TABLES:
        op.drop_table(table)
