"""SQLAlchemy Core tables of the SaaS Notifications service, matching migration ``0013``.

- ``notification_channels``: a delivery platform's configuration (Slack bot or incoming webhook,
  Teams Workflows webhook, SMTP); what is secret (a bot token, a webhook URL, an SMTP password)
  is in ``secret``, Fernet-encrypted, never returned.
- ``notification_workflows`` + ``notification_workflow_versions``: a trigger kind (and an
  optional condition) starting a list of steps; every change is a new version, runs keep theirs.
- ``notification_runs``: one workflow run per trigger (``UNIQUE (workflow_id, dedup_key)``: a
  trigger's repeat is the same run), its step pointer, when it wakes, who holds its lease.
- ``notification_run_steps``: what a finished (or started) step decided — a delay's deadline, a
  throttle's verdict, a digest's id — written once per run and step, so a step redone after a
  crash decides the same.
- ``notification_sends``: one row per message, keyed by its idempotency key (run + step): a
  ``sent`` row is never sent again.
- ``notification_approvals``: one pending decision per run and step.
- ``notification_digests`` / ``notification_throttles``: per key and window.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from sinks.db import metadata

CHANNEL_KINDS = ("slack_bot", "slack_webhook", "teams_workflow", "email")
RUN_STATES = ("running", "waiting", "done", "failed")
SEND_STATES = ("sending", "sent", "failed")
APPROVAL_STATES = ("pending", "approved", "rejected", "expired")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


channels = Table(
    "notification_channels",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("config", JSONB, nullable=False),
    Column("secret", LargeBinary, nullable=True),
    Column("rate_per_s", Float, nullable=True),
    Column(
        "fallback_channel_id", BigInteger, ForeignKey("notification_channels.id"), nullable=True
    ),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(_in("kind", CHANNEL_KINDS), name="ck_notification_channels_kind"),
)

workflows = Table(
    "notification_workflows",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("trigger_kind", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_notification_workflows_kind", "trigger_kind"),
)

workflow_versions = Table(
    "notification_workflow_versions",
    metadata,
    Column("workflow_id", BigInteger, ForeignKey("notification_workflows.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", JSONB, nullable=False),  # {condition, steps}
    Column("created_by", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("workflow_id", "version", name="pk_notification_workflow_versions"),
)

runs = Table(
    "notification_runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("workflow_id", BigInteger, ForeignKey("notification_workflows.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("trigger_kind", Text, nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("dedup_key", Text, nullable=False),
    Column("trigger", JSONB, nullable=False),
    Column("context", JSONB, nullable=False, server_default="{}"),
    Column("trace_id", Text, nullable=True),
    Column("state", Text, nullable=False),
    Column("step", Integer, nullable=False, server_default="0"),
    Column("wake_at", DateTime(timezone=True), nullable=True),
    Column("waiting_on", Text, nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("resume_sent_at", DateTime(timezone=True), nullable=True),
    Column("outcome", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("workflow_id", "dedup_key", name="uq_notification_runs_dedup"),
    CheckConstraint(_in("state", RUN_STATES), name="ck_notification_runs_state"),
    Index("ix_notification_runs_due", "state", "wake_at"),
)

run_steps = Table(
    "notification_run_steps",
    metadata,
    Column("run_id", Text, ForeignKey("notification_runs.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("detail", JSONB, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("run_id", "step", name="pk_notification_run_steps"),
)

sends = Table(
    "notification_sends",
    metadata,
    Column("idempotency_key", Text, primary_key=True),
    Column("run_id", Text, nullable=True),  # NULL for a digest or a test message
    Column("step", Integer, nullable=True),
    Column("channel_id", BigInteger, ForeignKey("notification_channels.id"), nullable=False),
    Column("channel_kind", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("receipt", JSONB, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(_in("state", SEND_STATES), name="ck_notification_sends_state"),
    Index("ix_notification_sends_run", "run_id"),
)

approvals = Table(
    "notification_approvals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("run_id", Text, ForeignKey("notification_runs.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("trigger_kind", Text, nullable=False),
    Column("question", Text, nullable=False),
    # A large payment's approval is the settlement's own decision (see streams/notifications).
    Column("settlement_id", Text, nullable=True),
    Column("payment_id", Text, nullable=True),
    Column("approvers", JSONB, nullable=False),  # {roles: [...], principals: [...]}
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("on_expiry", Text, nullable=False),
    Column("state", Text, nullable=False, server_default="pending"),
    Column("answered_by", Text, nullable=True),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    Column("expiry_sent_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("run_id", "step", name="uq_notification_approvals_step"),
    CheckConstraint(_in("state", APPROVAL_STATES), name="ck_notification_approvals_state"),
    Index("ix_notification_approvals_state", "state", "created_at"),
    Index("ix_notification_approvals_settlement", "settlement_id"),
)

digests = Table(
    "notification_digests",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("workflow_id", BigInteger, ForeignKey("notification_workflows.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("key", Text, nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("channel", Text, nullable=False),
    Column("template", JSONB, nullable=False),
    Column("count", Integer, nullable=False, server_default="0"),
    Column("items", JSONB, nullable=False, server_default="[]"),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("flush_sent_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("workflow_id", "step", "key", "window_end", name="uq_notification_digests"),
    Index("ix_notification_digests_open", "sent_at", "window_end"),
)

throttles = Table(
    "notification_throttles",
    metadata,
    Column("workflow_id", BigInteger, ForeignKey("notification_workflows.id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("key", Text, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
    PrimaryKeyConstraint(
        "workflow_id", "step", "key", "window_start", name="pk_notification_throttles"
    ),
)
