"""SQLAlchemy Core tables of the CRM Automation service, matching migration ``0011``.

::

    crm_platforms ──< crm_mappings (one Salesforce + one HubSpot platform)
    crm_mappings ──< crm_sync_states (one per side: the feed cursor and the counts)
                 ──< crm_links (a record on each side) ──< crm_conflicts (manual policy)

- A **platform**'s credential is Fernet ciphertext (:mod:`sinks.cipher`); the clear token is
  never stored, returned or logged. ``own_origin`` is how the platform names the
  integration's own writes: the Salesforce API client id (``Sforce-Call-Options``), the
  HubSpot app id — the first layer of echo suppression.
- A **sync state** is the change-feed cursor of one side of a mapping (the direction from that
  side to the other), the time it last synced and its counts (``skipped_reasons``: reason →
  count).
- A **full sync** is one manual reconcile of a mapping (or its dry run): ``planned`` counts
  what it would create / update / skip, ``samples`` shows a few of each, ``total`` and
  ``done`` its progress (the pipeline counts ``done`` as it handles the sync's events).
- A **link** pairs a Salesforce id with a HubSpot id; ``*_values`` are the mapped fields as
  last synced on each side (what a conflict is measured against), ``*_hash`` their digest,
  ``*_watermark`` the newest feed position applied per side.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from sinks.db import metadata

PLATFORM_KINDS = ("salesforce", "hubspot")
SIDES = ("salesforce", "hubspot")


def _at(name: str, nullable: bool = False) -> Column[Any]:
    default = None if nullable else func.now()
    return Column(name, DateTime(timezone=True), nullable=nullable, server_default=default)


def _mapping_fk() -> Column[Any]:
    return Column(
        "mapping_id", BigInteger, ForeignKey("crm_mappings.id", ondelete="CASCADE"), nullable=False
    )


def _json(name: str) -> Column[Any]:
    return Column(name, JSONB, nullable=False, server_default=text("'{}'::jsonb"))


def _count(name: str, default: str = "0") -> Column[Any]:
    return Column(name, BigInteger, nullable=False, server_default=text(default))


crm_platforms = Table(
    "crm_platforms",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    Column("workspace_id", Text, nullable=True),
    Column("own_origin", Text, nullable=False),
    Column("credential_ciphertext", LargeBinary, nullable=False),
    _at("created_at"),
    _at("updated_at"),
)

crm_mappings = Table(
    "crm_mappings",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("salesforce_platform_id", BigInteger, ForeignKey("crm_platforms.id"), nullable=False),
    Column("hubspot_platform_id", BigInteger, ForeignKey("crm_platforms.id"), nullable=False),
    Column("spec", JSONB, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("poll_interval_s", Float, nullable=False, server_default=text("2")),
    _at("created_at"),
    _at("updated_at"),
)

crm_sync_states = Table(
    "crm_sync_states",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _mapping_fk(),
    Column("side", Text, nullable=False),
    Column("cursor", Text, nullable=True),
    _at("last_polled_at", nullable=True),
    _at("last_synced_at", nullable=True),
    _count("read_count"),
    _count("own_skipped"),
    _count("written"),
    _count("skipped"),
    _count("failed"),
    _json("skipped_reasons"),
    UniqueConstraint("mapping_id", "side", name="uq_crm_sync_states_side"),
)

crm_links = Table(
    "crm_links",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _mapping_fk(),
    Column("salesforce_id", Text, nullable=True),
    Column("hubspot_id", Text, nullable=True),
    Column("match_value", Text, nullable=True),
    _json("salesforce_values"),
    _json("hubspot_values"),
    Column("salesforce_hash", Text, nullable=True),
    Column("hubspot_hash", Text, nullable=True),
    _count("salesforce_watermark", "-1"),
    _count("hubspot_watermark", "-1"),
    _at("deleted_at", nullable=True),
    Column("last_error", Text, nullable=True),
    _at("last_synced_at", nullable=True),
    _at("created_at"),
    UniqueConstraint("mapping_id", "salesforce_id", name="uq_crm_links_salesforce"),
    UniqueConstraint("mapping_id", "hubspot_id", name="uq_crm_links_hubspot"),
)

crm_conflicts = Table(
    "crm_conflicts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _mapping_fk(),
    Column("link_id", BigInteger, ForeignKey("crm_links.id", ondelete="CASCADE"), nullable=False),
    Column("field", Text, nullable=False),
    Column("salesforce_value", Text, nullable=True),
    Column("hubspot_value", Text, nullable=True),
    Column("status", Text, nullable=False, server_default=text("'open'")),
    Column("choice", Text, nullable=True),
    Column("resolved_by", Text, nullable=True),
    _at("opened_at"),
    _at("resolved_at", nullable=True),
    Index(
        "uq_crm_conflicts_one_open",
        "link_id",
        "field",
        unique=True,
        postgresql_where=text("status = 'open'"),
    ),
)

FULL_SYNC_STATUSES = ("queued", "running", "done", "failed", "cancelled")

crm_full_syncs = Table(
    "crm_full_syncs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _mapping_fk(),
    Column("dry_run", Boolean, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'queued'")),
    Column("requested_by", Text, nullable=False),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    _count("total"),
    _count("done"),
    _json("planned"),
    _json("samples"),
    _json("outcomes"),
    Column("error", Text, nullable=True),
    _at("created_at"),
    _at("started_at", nullable=True),
    _at("finished_at", nullable=True),
    _at("updated_at"),
    # a runner's while it plans and hands over (renewed); expired: its worker died (0014)
    _at("lease_until", nullable=True),
    Index(
        "uq_crm_full_syncs_one_running",
        "mapping_id",
        unique=True,
        postgresql_where=text("status = 'running'"),
    ),
)
