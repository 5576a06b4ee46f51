"""The notification service's read side: approvals, runs (steps, sends, what they wait on)."""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import func, select

from sinks.db import database_errors
from sinks.notifications.tables import approvals, run_steps, runs, sends, workflows


def list_approvals(
    engine: sqlalchemy.Engine,
    *,
    state: str | None,
    limit: int,
    offset: int,
    approval_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    where = [approvals.c.state == state] if state else []
    if approval_id is not None:
        where.append(approvals.c.id == approval_id)
    listing = (
        select(approvals, workflows.c.name.label("workflow"))
        .join(runs, runs.c.id == approvals.c.run_id)
        .join(workflows, workflows.c.id == runs.c.workflow_id)
        .where(*where)
        .order_by(approvals.c.created_at.desc(), approvals.c.id)
        .limit(limit)
        .offset(offset)
    )
    with database_errors("list approvals"), engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(listing).mappings()]
        total = conn.execute(select(func.count()).select_from(approvals).where(*where)).scalar_one()
    return rows, int(total)


def list_runs(
    engine: sqlalchemy.Engine,
    *,
    state: str | None,
    workflow_id: int | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    where = []
    if state:
        where.append(runs.c.state == state)
    if workflow_id is not None:
        where.append(runs.c.workflow_id == workflow_id)
    listing = (
        select(runs, workflows.c.name.label("workflow"))
        .join(workflows, workflows.c.id == runs.c.workflow_id)
        .where(*where)
        .order_by(runs.c.created_at.desc(), runs.c.id)
        .limit(limit)
        .offset(offset)
    )
    with database_errors("list runs"), engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(listing).mappings()]
        total = conn.execute(select(func.count()).select_from(runs).where(*where)).scalar_one()
    return rows, int(total)


def run_detail(engine: sqlalchemy.Engine, run_id: str) -> dict[str, Any] | None:
    """A run with its step records, its sends (with receipts) and its approvals."""
    with database_errors("read run"), engine.connect() as conn:
        row = (
            conn.execute(
                select(runs, workflows.c.name.label("workflow"))
                .join(workflows, workflows.c.id == runs.c.workflow_id)
                .where(runs.c.id == run_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        steps = conn.execute(
            select(run_steps).where(run_steps.c.run_id == run_id).order_by(run_steps.c.step)
        ).mappings()
        sent = conn.execute(
            select(sends).where(sends.c.run_id == run_id).order_by(sends.c.created_at)
        ).mappings()
        asked = conn.execute(
            select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.step)
        ).mappings()
        return {
            **dict(row),
            "steps": [dict(s) for s in steps],
            "sends": [dict(s) for s in sent],
            "approvals": [dict(a) for a in asked],
        }


def workflow_health(engine: sqlalchemy.Engine) -> list[dict[str, Any]]:
    """Per workflow: its runs by state and its sends by state (the console's dashboard)."""
    by_state = select(runs.c.workflow_id, runs.c.state, func.count().label("n")).group_by(
        runs.c.workflow_id, runs.c.state
    )
    with database_errors("read workflow health"), engine.connect() as conn:
        counts: dict[int, dict[str, int]] = {}
        for r in conn.execute(by_state):
            counts.setdefault(r.workflow_id, {})[r.state] = int(r.n)
        listing = conn.execute(select(workflows).order_by(workflows.c.id)).mappings()
        return [{**dict(w), "runs": counts.get(w["id"], {})} for w in listing]
