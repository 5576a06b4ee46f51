"""Repository of the API Integration records: connectors, endpoints, credentials, mappings,
flows. Runs (list, filters, summary) are in :mod:`sinks.integration.run_queries`.

Blocking SQLAlchemy calls: the API runs them from plain ``def`` routes (threadpool), a worker
through ``asyncio.to_thread``. Rows come back as plain dicts. Errors:

- :class:`RecordNotFound` — no row with that id (the API answers 404);
- :class:`RecordConflict` — a unique name taken, a row still referenced, a referenced row
  missing (409);
- :class:`RecordInvalid` — a request that breaks a rule of the domain (422);
- every other database failure → the error tree via :func:`sinks.db.database_errors`.

Credentials: rows returned by this module never carry ``ciphertext``; the delivery pipeline
opens one with :func:`load_credential`. Mapping rules are written and read as JSON *text* so
numbers inside rules stay exact (:func:`streams.mapping.load_payload`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import Table, Text, cast, func, literal, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB

from sinks.db import database_errors
from sinks.integration.credentials import Credential, encrypt, open_credential, remember_credential
from sinks.integration.tables import connectors, credentials, endpoints, flows, mapping_versions
from sinks.integration.tables import mappings as mappings_table
from streams.mapping import dump_output, load_payload
from synapseops.errors import (
    CredentialUnreadable,
    RecordConflict,
    RecordInvalid,
    RecordNotFound,
    SynapseOpsError,
)
from synapseops.settings import Settings


@dataclass(frozen=True)
class MappingVersion:
    mapping_id: int
    version: int
    rules: dict[str, Any]


@contextmanager
def _writing(what: str) -> Iterator[None]:
    try:
        with database_errors(what):
            yield
    except SynapseOpsError as exc:
        cause = exc.__cause__
        if isinstance(cause, sa_exc.IntegrityError):
            raise RecordConflict(f"{what}: {_constraint_message(cause)}") from cause
        raise


def _constraint_message(exc: sa_exc.IntegrityError) -> str:
    diag = getattr(exc.orig, "diag", None)
    detail = getattr(diag, "message_detail", None) or ""
    primary = getattr(diag, "message_primary", None) or str(exc.orig).splitlines()[0]
    # DETAIL names the key, e.g. 'Key (name)=(shopify) already exists.' — no secrets there:
    # credentials are unique by name only and the ciphertext is never part of a key.
    return f"{primary}. {detail}".strip() if detail else primary


# ---- generic rows --------------------------------------------------------------------------


def _public_columns(table: Table) -> list[Any]:
    return [column for column in table.c if column.name != "ciphertext"]


def insert_row(
    engine: sqlalchemy.Engine, table: Table, values: Mapping[str, Any]
) -> dict[str, Any]:
    statement = sqlalchemy.insert(table).values(dict(values)).returning(*_public_columns(table))
    with _writing(f"create {table.name}"), engine.begin() as conn:
        return dict(conn.execute(statement).mappings().one())


def get_row(engine: sqlalchemy.Engine, table: Table, row_id: int) -> dict[str, Any]:
    statement = select(*_public_columns(table)).where(table.c.id == row_id)
    with database_errors(f"read {table.name}"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no {table.name[:-1]} with id {row_id}")
    return dict(row)


def list_rows(
    engine: sqlalchemy.Engine, table: Table, *where: sqlalchemy.ColumnElement[bool]
) -> list[dict[str, Any]]:
    statement = select(*_public_columns(table)).where(*where).order_by(table.c.id)
    with database_errors(f"list {table.name}"), engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def update_row(
    engine: sqlalchemy.Engine, table: Table, row_id: int, changes: Mapping[str, Any]
) -> dict[str, Any]:
    values = dict(changes)
    if "updated_at" in table.c:
        values["updated_at"] = func.now()
    if not changes:
        return get_row(engine, table, row_id)
    statement = (
        sqlalchemy.update(table)
        .where(table.c.id == row_id)
        .values(values)
        .returning(*_public_columns(table))
    )
    with _writing(f"update {table.name}"), engine.begin() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no {table.name[:-1]} with id {row_id}")
    return dict(row)


def delete_row(engine: sqlalchemy.Engine, table: Table, row_id: int) -> None:
    statement = sqlalchemy.delete(table).where(table.c.id == row_id).returning(table.c.id)
    with _writing(f"delete {table.name}"), engine.begin() as conn:
        deleted = conn.execute(statement).first()
    if deleted is None:
        raise RecordNotFound(f"no {table.name[:-1]} with id {row_id}")


# ---- connectors, endpoints, flows -----------------------------------------------------------


def connector_by_name(engine: sqlalchemy.Engine, name: str) -> dict[str, Any]:
    rows = list_rows(engine, connectors, connectors.c.name == name)
    if not rows:
        raise RecordNotFound(f"no connector named {name!r}")
    return rows[0]


def source_endpoint(engine: sqlalchemy.Engine, connector: str, endpoint: str) -> dict[str, Any]:
    """The source endpoint ``endpoint`` of the connector named ``connector`` (ingress)."""
    statement = (
        select(*endpoints.c)
        .join(connectors, connectors.c.id == endpoints.c.connector_id)
        .where(
            connectors.c.name == connector,
            endpoints.c.name == endpoint,
            endpoints.c.direction == "source",
        )
    )
    with database_errors("read endpoints"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no source endpoint {connector}/{endpoint}")
    return dict(row)


def check_flow_endpoints(engine: sqlalchemy.Engine, values: Mapping[str, Any]) -> None:
    """A flow reads from a source endpoint and writes to a target endpoint."""
    for field, direction in (("source_endpoint_id", "source"), ("target_endpoint_id", "target")):
        if values.get(field) is None:
            continue
        try:
            endpoint = get_row(engine, endpoints, int(values[field]))
        except RecordNotFound as exc:
            raise RecordInvalid(f"{field}: {exc}") from exc
        if endpoint["direction"] != direction:
            raise RecordInvalid(
                f"{field}: endpoint {endpoint['id']} is a {endpoint['direction']} endpoint, "
                f"not a {direction} one"
            )


def enabled_flows_for(engine: sqlalchemy.Engine, source_endpoint_id: int) -> list[dict[str, Any]]:
    return list_rows(
        engine, flows, flows.c.source_endpoint_id == source_endpoint_id, flows.c.enabled
    )


# ---- credentials ---------------------------------------------------------------------------


def create_credential(
    engine: sqlalchemy.Engine,
    settings: Settings,
    *,
    name: str,
    kind: str,
    secret: str,
    header_name: str | None = None,
) -> dict[str, Any]:
    remember_credential(kind, secret)
    values = {
        "name": name,
        "kind": kind,
        "ciphertext": encrypt(settings, secret),
        "header_name": header_name,
    }
    return insert_row(engine, credentials, values)


def rotate_credential(
    engine: sqlalchemy.Engine, settings: Settings, credential_id: int, secret: str
) -> dict[str, Any]:
    statement = (
        sqlalchemy.update(credentials)
        .where(credentials.c.id == credential_id)
        .values(ciphertext=encrypt(settings, secret), rotated_at=func.now())
        .returning(*_public_columns(credentials))
    )
    with _writing("rotate credential"), engine.begin() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no credential with id {credential_id}")
    remember_credential(str(row["kind"]), secret)
    return dict(row)


def load_credential(
    engine: sqlalchemy.Engine, settings: Settings, credential_id: int
) -> Credential:
    """The credential opened for one use (decrypted into a ``SecretStr``)."""
    statement = select(*credentials.c).where(credentials.c.id == credential_id)
    with database_errors("read credential"), engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no credential with id {credential_id}")
    return open_credential(settings, row)


def remember_all_credentials(engine: sqlalchemy.Engine, settings: Settings) -> int:
    """Open every stored credential once so the scrubber knows it; how many it learnt.

    One that does not decrypt (a lost key) is skipped: it cannot be sent either.
    """
    with database_errors("read credentials"), engine.connect() as conn:
        rows = list(conn.execute(select(*credentials.c)).mappings())
    learnt = 0
    for row in rows:
        try:
            open_credential(settings, row)
        except CredentialUnreadable:
            continue
        learnt += 1
    return learnt


# ---- mappings: every save is a new immutable version ----------------------------------------


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
    with _writing("create mapping"), engine.begin() as conn:
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
    with _writing("save mapping version"), engine.begin() as conn:
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
