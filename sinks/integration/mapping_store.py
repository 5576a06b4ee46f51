"""Mappings: every save is a new immutable version (a Run names the rules it ran with).

Rules are written and read as JSON *text* so numbers inside rules stay exact
(:func:`streams.mapping.load_payload`). Blocking SQLAlchemy calls; errors as
:mod:`sinks.integration.rows` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import Text, cast, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB

from sinks.db import database_errors
from sinks.integration.rows import get_row, writing
from sinks.integration.tables import flows, mapping_versions
from sinks.integration.tables import mappings as mappings_table
from streams.mapping import dump_output, load_payload
from synapseops.errors import RecordNotFound


@dataclass(frozen=True)
class MappingVersion:
    mapping_id: int
    version: int
    rules: dict[str, Any]


def _rules_json(rules: Mapping[str, Any]) -> Any:
    # dump_output writes Decimals digit for digit; PostgreSQL's jsonb keeps numerics exact.
    return cast(literal(dump_output(rules).decode(), Text), JSONB)


def _version_row(row: Mapping[str, Any] | sqlalchemy.RowMapping) -> dict[str, Any]:
    out = {key: value for key, value in row.items() if key != "rules_text"}
    out["rules"] = load_payload(row["rules_text"])
    return out


_VERSION_COLUMNS = (
    mapping_versions.c.mapping_id,
    mapping_versions.c.version,
    mapping_versions.c.rules.cast(Text).label("rules_text"),
    mapping_versions.c.created_at,
    mapping_versions.c.created_by,
)


def create_mapping(
    engine: sqlalchemy.Engine,
    *,
    name: str,
    rules: Mapping[str, Any],
    description: str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """A new mapping with its version 1: the mapping row, ``latest_version`` and ``version``
    (the version row)."""
    with writing("create mapping"), engine.begin() as conn:
        mapping = (
            conn.execute(
                sqlalchemy.insert(mappings_table)
                .values(name=name, description=description)
                .returning(*mappings_table.c)
            )
            .mappings()
            .one()
        )
        conn.execute(
            sqlalchemy.insert(mapping_versions).values(
                mapping_id=mapping["id"], version=1, rules=_rules_json(rules), created_by=created_by
            )
        )
        version = (
            conn.execute(
                select(*_VERSION_COLUMNS).where(mapping_versions.c.mapping_id == mapping["id"])
            )
            .mappings()
            .one()
        )
    return {**mapping, "latest_version": 1, "version": _version_row(version)}


def save_mapping_version(
    engine: sqlalchemy.Engine,
    mapping_id: int,
    rules: Mapping[str, Any],
    *,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Append version n+1; concurrent saves of one mapping are serialised by a row lock."""
    with writing("save mapping version"), engine.begin() as conn:
        locked = conn.execute(
            select(mappings_table.c.id).where(mappings_table.c.id == mapping_id).with_for_update()
        ).first()
        if locked is None:
            raise RecordNotFound(f"no mapping with id {mapping_id}")
        latest = conn.execute(
            select(func.coalesce(func.max(mapping_versions.c.version), 0)).where(
                mapping_versions.c.mapping_id == mapping_id
            )
        ).scalar_one()
        row = (
            conn.execute(
                sqlalchemy.insert(mapping_versions)
                .values(
                    mapping_id=mapping_id,
                    version=latest + 1,
                    rules=_rules_json(rules),
                    created_by=created_by,
                )
                .returning(*_VERSION_COLUMNS)
            )
            .mappings()
            .one()
        )
    return _version_row(row)


def list_mappings(engine: sqlalchemy.Engine) -> list[dict[str, Any]]:
    latest = (
        select(func.max(mapping_versions.c.version))
        .where(mapping_versions.c.mapping_id == mappings_table.c.id)
        .scalar_subquery()
        .label("latest_version")
    )
    statement = select(*mappings_table.c, latest).order_by(mappings_table.c.id)
    with database_errors("list mappings"), engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def get_mapping(engine: sqlalchemy.Engine, mapping_id: int) -> dict[str, Any]:
    for row in list_mappings(engine):
        if row["id"] == mapping_id:
            return row
    raise RecordNotFound(f"no mapping with id {mapping_id}")


def list_mapping_versions(engine: sqlalchemy.Engine, mapping_id: int) -> list[dict[str, Any]]:
    get_mapping(engine, mapping_id)
    statement = (
        select(*_VERSION_COLUMNS)
        .where(mapping_versions.c.mapping_id == mapping_id)
        .order_by(mapping_versions.c.version)
    )
    with database_errors("list mapping versions"), engine.connect() as conn:
        return [_version_row(row) for row in conn.execute(statement).mappings()]


def get_mapping_version(engine: sqlalchemy.Engine, mapping_id: int, version: int) -> dict[str, Any]:
    statement = select(*_VERSION_COLUMNS).where(
        mapping_versions.c.mapping_id == mapping_id, mapping_versions.c.version == version
    )
    with database_errors("read mapping version"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"mapping {mapping_id} has no version {version}")
    return _version_row(row)


def resolve_mapping(
    engine: sqlalchemy.Engine, mapping_id: int, version: int | None = None
) -> MappingVersion:
    """The rules of ``version`` of a mapping, or of its latest version when ``None``."""
    statement = select(*_VERSION_COLUMNS).where(mapping_versions.c.mapping_id == mapping_id)
    if version is None:
        statement = statement.order_by(mapping_versions.c.version.desc()).limit(1)
    else:
        statement = statement.where(mapping_versions.c.version == version)
    with database_errors("read mapping version"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        which = "any version" if version is None else f"version {version}"
        raise RecordNotFound(f"mapping {mapping_id} has no {which}")
    return MappingVersion(mapping_id, int(row["version"]), load_payload(row["rules_text"]))


def resolve_flow_mapping(
    engine: sqlalchemy.Engine, flow_id: int, *, latest: bool = False
) -> MappingVersion:
    """The mapping version a flow runs with: its pinned one, or the latest (``latest=True``
    forces the latest even for a pinned flow — a re-run with "latest")."""
    flow = get_row(engine, flows, flow_id)
    pinned = None if latest else flow["mapping_version"]
    return resolve_mapping(engine, int(flow["mapping_id"]), pinned)
