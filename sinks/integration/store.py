"""Repository of the API Integration records: connectors, endpoints, credentials, mappings,
flows — one place to import them from. Generic rows are in :mod:`sinks.integration.rows`,
mapping versions in :mod:`sinks.integration.mapping_store` (both re-exported here); runs
(list, filters, summary) in :mod:`sinks.integration.run_queries`.

Blocking SQLAlchemy calls: the API runs them from plain ``def`` routes (threadpool), a worker
through ``asyncio.to_thread``. Rows come back as plain dicts. Errors:

- :class:`RecordNotFound` — no row with that id (the API answers 404);
- :class:`RecordConflict` — a unique name taken, a row still referenced, a referenced row
  missing (409);
- :class:`RecordInvalid` — a request that breaks a rule of the domain (422);
- every other database failure → the error tree via :func:`sinks.db.database_errors`.

Credentials: rows returned by this module never carry ``ciphertext``; the delivery pipeline
opens one with :func:`load_credential` (or, for its flows, in the catalog's one query).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy
from sqlalchemy import func, select

from sinks.db import database_errors
from sinks.integration.credentials import Credential, encrypt, open_credential, remember_credential
from sinks.integration.mapping_store import (
    MappingVersion,
    create_mapping,
    get_mapping,
    get_mapping_version,
    list_mapping_versions,
    list_mappings,
    resolve_flow_mapping,
    resolve_mapping,
    save_mapping_version,
)
from sinks.integration.rows import (
    delete_row,
    get_row,
    insert_row,
    list_rows,
    public_columns,
    update_row,
    writing,
)
from sinks.integration.tables import connectors, credentials, endpoints, flows
from synapseops.errors import CredentialUnreadable, RecordInvalid, RecordNotFound
from synapseops.settings import Settings

__all__ = [
    "MappingVersion",
    "check_flow_endpoints",
    "connector_by_name",
    "create_credential",
    "create_mapping",
    "delete_row",
    "enabled_flows_for",
    "get_mapping",
    "get_mapping_version",
    "get_row",
    "insert_row",
    "list_mapping_versions",
    "list_mappings",
    "list_rows",
    "load_credential",
    "remember_all_credentials",
    "resolve_flow_mapping",
    "resolve_mapping",
    "rotate_credential",
    "save_mapping_version",
    "source_endpoint",
    "update_row",
]


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
        .returning(*public_columns(credentials))
    )
    with writing("rotate credential"), engine.begin() as conn:
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
