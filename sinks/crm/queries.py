"""Reads of the CRM service for the API and the console: sync states, links, conflicts.

Blocking SQLAlchemy calls (the API's plain ``def`` routes run them in a threadpool); rows are
plain dicts. Lists are newest first, paged by ``before_id``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import func, select, update

from sinks.crm.tables import crm_conflicts, crm_links, crm_sync_states
from sinks.db import database_errors
from synapseops.errors import RecordConflict, RecordNotFound

MAX_PAGE = 500


def sync_states(engine: sqlalchemy.Engine, mapping_id: int | None = None) -> list[dict[str, Any]]:
    statement = select(crm_sync_states).order_by(crm_sync_states.c.id)
    if mapping_id is not None:
        statement = statement.where(crm_sync_states.c.mapping_id == mapping_id)
    with database_errors("crm: sync states"), engine.connect() as conn:
        return [dict(r) for r in conn.execute(statement).mappings()]


def links(
    engine: sqlalchemy.Engine,
    mapping_id: int | None = None,
    *,
    failed_only: bool = False,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    c = crm_links.c
    statement = select(crm_links).order_by(c.id.desc()).limit(min(limit, MAX_PAGE))
    if mapping_id is not None:
        statement = statement.where(c.mapping_id == mapping_id)
    if failed_only:
        statement = statement.where(c.last_error.is_not(None))
    if before_id is not None:
        statement = statement.where(c.id < before_id)
    with database_errors("crm: links"), engine.connect() as conn:
        return [dict(r) for r in conn.execute(statement).mappings()]


def conflicts(
    engine: sqlalchemy.Engine,
    mapping_id: int | None = None,
    status: str | None = "open",
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    c = crm_conflicts.c
    statement = select(crm_conflicts).order_by(c.id.desc()).limit(min(limit, MAX_PAGE))
    if mapping_id is not None:
        statement = statement.where(c.mapping_id == mapping_id)
    if status is not None:
        statement = statement.where(c.status == status)
    if before_id is not None:
        statement = statement.where(c.id < before_id)
    with database_errors("crm: conflicts"), engine.connect() as conn:
        return [dict(r) for r in conn.execute(statement).mappings()]


def open_conflicts(engine: sqlalchemy.Engine) -> dict[int, int]:
    """Mapping id → conflicts still open (the console's counter, the API's gauge)."""
    c = crm_conflicts.c
    statement = select(c.mapping_id, func.count()).where(c.status == "open").group_by(c.mapping_id)
    with database_errors("crm: open conflicts"), engine.connect() as conn:
        return {int(m): int(n) for m, n in conn.execute(statement)}


def choose(engine: sqlalchemy.Engine, conflict_id: int, choice: str, who: str) -> dict[str, Any]:
    """Record a person's choice on an open conflict (the sync applies it); the conflict with
    its link's Salesforce id (the command's key)."""
    c = crm_conflicts.c
    with database_errors("crm: choose"), engine.begin() as conn:
        row = (
            conn.execute(select(crm_conflicts).where(c.id == conflict_id).with_for_update())
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise RecordNotFound(f"no CRM conflict with id {conflict_id}")
        if row["status"] != "open":
            raise RecordConflict(f"conflict {conflict_id} is already {row['status']}")
        if row["choice"] is not None:
            raise RecordConflict(
                f"conflict {conflict_id}: {row['resolved_by']} chose {row['choice']}; "
                "the sync is applying it"
            )
        conn.execute(
            update(crm_conflicts).where(c.id == conflict_id).values(choice=choice, resolved_by=who)
        )
        link = conn.execute(
            select(crm_links.c.salesforce_id).where(crm_links.c.id == row["link_id"])
        ).scalar_one()
    return {**dict(row), "choice": choice, "resolved_by": who, "salesforce_id": link}
