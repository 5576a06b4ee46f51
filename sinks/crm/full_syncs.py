"""Manual full syncs of a mapping: requested by the API, run by a worker, counted by the
pipeline (``crm_full_syncs``).

A row is ``queued`` when asked for; a worker's runner claims it (``FOR UPDATE SKIP LOCKED``:
one runner per row), plans it (``planned``, ``samples``) and, unless it is a dry run, hands
the pairs that need work to the pipeline as events (``total``); the pipeline adds to ``done``
as it handles them (:func:`count_done`, in its batch's transaction) and the row is ``done``
when every event was handled. ``cancel_requested`` stops a run between two steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy
from sqlalchemy import case, func, select, update

from sinks.crm.tables import crm_full_syncs
from sinks.db import database_errors
from synapseops.errors import RecordConflict, RecordNotFound

_C = crm_full_syncs.c


def request(engine: sqlalchemy.Engine, mapping_id: int, dry_run: bool, who: str) -> dict[str, Any]:
    statement = (
        sqlalchemy.insert(crm_full_syncs)
        .values(mapping_id=mapping_id, dry_run=dry_run, requested_by=who)
        .returning(*crm_full_syncs.c)
    )
    with database_errors("crm: request full sync"), engine.begin() as conn:
        return dict(conn.execute(statement).mappings().one())


def get(engine: sqlalchemy.Engine, sync_id: int) -> dict[str, Any]:
    with database_errors("crm: read full sync"), engine.connect() as conn:
        row = conn.execute(select(crm_full_syncs).where(_C.id == sync_id)).mappings().one_or_none()
    if row is None:
        raise RecordNotFound(f"no CRM full sync with id {sync_id}")
    return dict(row)


def listing(
    engine: sqlalchemy.Engine, mapping_id: int | None, limit: int = 50
) -> list[dict[str, Any]]:
    statement = select(crm_full_syncs).order_by(_C.id.desc()).limit(limit)
    if mapping_id is not None:
        statement = statement.where(_C.mapping_id == mapping_id)
    with database_errors("crm: list full syncs"), engine.connect() as conn:
        return [dict(r) for r in conn.execute(statement).mappings()]


def cancel(engine: sqlalchemy.Engine, sync_id: int) -> dict[str, Any]:
    with database_errors("crm: cancel full sync"), engine.begin() as conn:
        row = (
            conn.execute(
                update(crm_full_syncs)
                .where(_C.id == sync_id, _C.status.in_(("queued", "running")))
                .values(
                    cancel_requested=True,
                    status=case((_C.status == "queued", "cancelled"), else_=_C.status),
                    updated_at=func.now(),
                )
                .returning(*crm_full_syncs.c)
            )
            .mappings()
            .one_or_none()
        )
    if row is None:
        get(engine, sync_id)  # 404 when there is none
        raise RecordConflict(f"full sync {sync_id} has already finished")
    return dict(row)


def claim_next(engine: sqlalchemy.Engine) -> dict[str, Any] | None:
    """The oldest queued full sync, now ``running`` and this caller's."""
    oldest = (
        select(_C.id)
        .where(_C.status == "queued")
        .order_by(_C.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(crm_full_syncs)
        .where(_C.id == oldest)
        .values(status="running", started_at=func.now(), updated_at=func.now())
        .returning(*crm_full_syncs.c)
    )
    with database_errors("crm: claim full sync"), engine.begin() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    return dict(row) if row else None


def save(engine: sqlalchemy.Engine, sync_id: int, **values: Any) -> dict[str, Any]:
    """Update the row (``planned``, ``total``, ``status``, ...); its cancel flag with it."""
    if values.get("status") in ("done", "failed", "cancelled"):
        values["finished_at"] = func.now()
    statement = (
        update(crm_full_syncs)
        .where(_C.id == sync_id)
        .values(updated_at=func.now(), **values)
        .returning(*crm_full_syncs.c)
    )
    with database_errors("crm: save full sync"), engine.begin() as conn:
        return dict(conn.execute(statement).mappings().one())


def count_done(conn: sqlalchemy.Connection, handled: Mapping[int, Mapping[str, int]]) -> None:
    """Add the pipeline's answers (full sync id → outcome → records) to each run's progress;
    a run whose every event was handled (done or skipped) is ``done``."""
    for sync_id, outcomes in handled.items():
        finished = outcomes.get("done", 0) + outcomes.get("skipped", 0)
        merged: Any = _C.outcomes
        for outcome, count in outcomes.items():
            current = func.coalesce(_C.outcomes[outcome].as_integer(), 0) + count
            merged = merged.op("||", return_type=_C.outcomes.type)(
                func.jsonb_build_object(outcome, current)
            )
        done = _C.done + finished
        conn.execute(
            update(crm_full_syncs)
            .where(_C.id == sync_id)
            .values(
                done=done,
                outcomes=merged,
                updated_at=func.now(),
                status=case(
                    ((_C.status == "running") & (_C.total > 0) & (done >= _C.total), "done"),
                    else_=_C.status,
                ),
                finished_at=case(
                    ((_C.status == "running") & (_C.total > 0) & (done >= _C.total), func.now()),
                    else_=_C.finished_at,
                ),
            )
        )
