"""The flow configuration as the delivery worker reads it: every flow with its source, its
target, its credential (opened) and its mapping version's rules, in one query.

:func:`config_version` is the cheap check (one row, bumped by triggers in every writing
transaction, migration 0009); :func:`flow_rows` the load, run only when the version moved.
The version is read *before* the rows: a write committed between the two leaves the rows newer
than the version, so the next check reloads — the catalog can be early, never stale.
Blocking SQLAlchemy calls on a caller's connection (the worker runs them in a thread).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import Text, select, true

from sinks.integration.credentials import Credential, open_credential
from sinks.integration.tables import (
    connectors,
    credentials,
    endpoints,
    flows,
    integration_config,
    mapping_versions,
)
from streams.mapping import load_payload
from synapseops.errors import SynapseOpsError
from synapseops.settings import Settings


@dataclass(frozen=True)
class FlowRow:
    """One flow as the catalog holds it. ``credential`` is opened; ``problem`` says why the
    flow cannot deliver as configured (a credential that does not open, no mapping version),
    raised for each event it gets instead of a delivery."""

    flow_id: int
    enabled: bool
    source_connector: str
    source_endpoint: str
    mapping_id: int
    pinned_version: int | None
    mapping_version: int | None
    rules: dict[str, Any] | None
    target: dict[str, Any]  # connector_id, connector, protocol, base_url, path, method, ...
    credential: Credential | None
    problem: SynapseOpsError | None = None


def config_version(conn: sqlalchemy.Connection) -> int:
    """The configuration's current version (0 on a database without migration 0009's row)."""
    found = conn.execute(
        select(integration_config.c.version).where(integration_config.c.id == 1)
    ).scalar_one_or_none()
    return int(found or 0)


def _statement() -> sqlalchemy.Select[Any]:
    source, target = endpoints.alias("source"), endpoints.alias("target")
    source_connector, target_connector = connectors.alias("sc"), connectors.alias("tc")
    # The pinned version, or the latest: one row per flow, chosen by the database.
    version = (
        select(
            mapping_versions.c.version,
            mapping_versions.c.rules.cast(Text).label("rules_text"),
        )
        .where(
            mapping_versions.c.mapping_id == flows.c.mapping_id,
            sqlalchemy.or_(
                flows.c.mapping_version.is_(None),
                mapping_versions.c.version == flows.c.mapping_version,
            ),
        )
        .order_by(mapping_versions.c.version.desc())
        .limit(1)
        .lateral("mv")
    )
    return (
        select(
            flows.c.id,
            flows.c.enabled,
            flows.c.mapping_id,
            flows.c.mapping_version.label("pinned_version"),
            source_connector.c.name.label("source_connector"),
            source.c.name.label("source_endpoint"),
            target_connector.c.id.label("t_connector_id"),
            target_connector.c.name.label("t_connector"),
            target_connector.c.protocol.label("t_protocol"),
            target_connector.c.base_url.label("t_base_url"),
            target_connector.c.config.label("t_connector_config"),
            target.c.path.label("t_path"),
            target.c.method.label("t_method"),
            target.c.kafka_topic.label("t_kafka_topic"),
            target.c.config.label("t_endpoint_config"),
            credentials.c.id.label("c_id"),
            credentials.c.name.label("c_name"),
            credentials.c.kind.label("c_kind"),
            credentials.c.ciphertext.label("c_ciphertext"),
            credentials.c.header_name.label("c_header_name"),
            version.c.version.label("mapping_version"),
            version.c.rules_text,
        )
        .join(source, source.c.id == flows.c.source_endpoint_id)
        .join(source_connector, source_connector.c.id == source.c.connector_id)
        .join(target, target.c.id == flows.c.target_endpoint_id)
        .join(target_connector, target_connector.c.id == target.c.connector_id)
        .outerjoin(credentials, credentials.c.id == flows.c.credential_id)
        .outerjoin(version, true())
        .order_by(flows.c.id)
    )


def flow_rows(conn: sqlalchemy.Connection, settings: Settings) -> list[FlowRow]:
    """Every flow (enabled or not: a re-run may name a disabled one), in one query."""
    return [_flow_row(row, settings) for row in conn.execute(_statement()).mappings()]


def _flow_row(row: sqlalchemy.RowMapping, settings: Settings) -> FlowRow:
    problem: SynapseOpsError | None = None
    credential = None
    if row["c_id"] is not None:
        opened = {
            "id": row["c_id"],
            "name": row["c_name"],
            "kind": row["c_kind"],
            "ciphertext": row["c_ciphertext"],
            "header_name": row["c_header_name"],
        }
        try:
            credential = open_credential(settings, opened)
        except SynapseOpsError as exc:
            problem = exc
    rules = load_payload(row["rules_text"]) if row["rules_text"] is not None else None
    if rules is None and problem is None:
        which = (
            "any version" if row["pinned_version"] is None else f"version {row['pinned_version']}"
        )
        problem = SynapseOpsError(f"mapping {row['mapping_id']} has no {which}")
    return FlowRow(
        flow_id=int(row["id"]),
        enabled=bool(row["enabled"]),
        source_connector=str(row["source_connector"]),
        source_endpoint=str(row["source_endpoint"]),
        mapping_id=int(row["mapping_id"]),
        pinned_version=row["pinned_version"],
        mapping_version=row["mapping_version"],
        rules=rules,
        target={
            "connector_id": int(row["t_connector_id"]),
            "connector": str(row["t_connector"]),
            "protocol": str(row["t_protocol"]),
            "base_url": str(row["t_base_url"] or ""),
            "path": str(row["t_path"] or "/"),
            "method": str(row["t_method"] or "POST"),
            "kafka_topic": row["t_kafka_topic"],
            "config": {**(row["t_connector_config"] or {}), **(row["t_endpoint_config"] or {})},
        },
        credential=credential,
        problem=problem,
    )
