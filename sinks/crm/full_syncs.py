"""Manual full syncs of a mapping: requested by the API, run by a worker, counted by the
pipeline (``crm_full_syncs``).

A row is ``queued`` when asked for; a worker's runner claims it (``FOR UPDATE SKIP LOCKED``:
one runner per row), plans it (``planned``, ``samples``) and, unless it is a dry run, hands
the pairs that need work to the pipeline as events (``total``); the pipeline adds to ``done``
as it handles them (:func:`count_done`, in its batch's transaction) and the row is ``done``
when every event was handled. ``cancel_requested`` stops a run between two steps.

Two full syncs of one mapping never run at once (a partial unique index: one ``running`` row
per mapping; the next waits ``queued``). A runner holds a lease on its row while it plans and
hands over (:func:`renew`, every page and every 200 pairs); a worker killed meanwhile leaves
its lease to run out, and the next runner takes the row over and plans it again — pairs the
dead runner handed over are handled already or agree by then, so planning again writes
nothing twice (their late answers may still add to ``done``). Once every pair is handed over
the lease is given up: what is left is the pipeline's, on Kafka.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy
from sqlalchemy import case, func, select, update
from sqlalchemy import exc as sa_exc

from sinks.crm.tables import crm_full_syncs
from sinks.db import database_errors
from synapseops.errors import RecordConflict, RecordNotFound
from synapseops.logging import get_logger

log = get_logger(__name__)

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


def claim_next(engine: sqlalchemy.Engine, lease_s: float) -> dict[str, Any] | None:
    """The next full sync for this runner, ``running`` and leased to it for ``lease_s``: one
    whose runner died (its lease ran out: taken over and planned again from the start), else
    the oldest queued one of a mapping with no full sync running. None when there is none —
    or when another runner claimed a full sync of the same mapping at the same moment (the
    one-running-per-mapping index refused this one; it stays queued)."""
    lease = _lease(lease_s)
    expired = (
        select(_C.id)
        .where(_C.status == "running", _C.lease_until.is_not(None), _C.lease_until < func.now())
        .order_by(_C.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    running = select(_C.mapping_id).where(_C.status == "running")
    oldest = (
        select(_C.id)
        .where(_C.status == "queued", _C.mapping_id.not_in(running))
        .order_by(_C.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    restart = {
        "total": 0,
        "done": 0,
        "outcomes": {},
        "started_at": func.now(),
        "updated_at": func.now(),
        "lease_until": lease,
    }
    with database_errors("crm: claim full sync"), engine.begin() as conn:
        row = (
            conn.execute(
                update(crm_full_syncs)
                .where(_C.id == expired)
                .values(**restart)
                .returning(*crm_full_syncs.c)
            )
            .mappings()
            .one_or_none()
        )
        if row is not None:
            log.warning("full sync taken over: its runner's lease ran out", extra={"id": row["id"]})
            return dict(row)
        try:
            with conn.begin_nested():
                row = (
                    conn.execute(
                        update(crm_full_syncs)
                        .where(_C.id == oldest)
                        .values(status="running", **restart)
                        .returning(*crm_full_syncs.c)
                    )
                    .mappings()
                    .one_or_none()
                )
        except sa_exc.IntegrityError:  # a full sync of that mapping was claimed meanwhile
            return None
    return dict(row) if row else None


def _lease(seconds: float) -> Any:
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, float(seconds))


def renew(
    engine: sqlalchemy.Engine, row: Mapping[str, Any], lease_s: float | None
) -> dict[str, Any] | None:
    """Extend this runner's lease on ``row`` (``lease_s`` None: give it up, every pair handed
    over); the row as it is now, or None when the lease is no longer this runner's (it ran
    out and another runner took the full sync over, or it finished)."""
    lease = _lease(lease_s) if lease_s is not None else None
    statement = (
        update(crm_full_syncs)
        .where(
            _C.id == row["id"],
            _C.started_at == row["started_at"],  # a takeover restarts the clock
            _C.status == "running",
        )
        .values(lease_until=lease, updated_at=func.now())
        .returning(*crm_full_syncs.c)
    )
    with database_errors("crm: renew full sync lease"), engine.begin() as conn:
        found = conn.execute(statement).mappings().one_or_none()
    return dict(found) if found else None


def save(engine: sqlalchemy.Engine, sync_id: int, **values: Any) -> dict[str, Any]:
    """Update the row (``planned``, ``total``, ``status``, ...); its cancel flag with it. A
    finished row holds no lease."""
    if values.get("status") in ("done", "failed", "cancelled"):
        values["finished_at"] = func.now()
        values["lease_until"] = None
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
                lease_until=case(
                    ((_C.status == "running") & (_C.total > 0) & (done >= _C.total), None),
                    else_=_C.lease_until,
                ),
                finished_at=case(
                    ((_C.status == "running") & (_C.total > 0) & (done >= _C.total), func.now()),
                    else_=_C.finished_at,
                ),
            )
        )
