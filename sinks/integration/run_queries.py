"""Reading Runs: lists with filters, one run with its bodies, re-run selection, the summary.

Runs are written by the delivery pipeline (one row per attempt); this module only reads.
A **bulk re-run** looks at the *latest attempt* of each (flow, source event): re-running a
failed first attempt of an event that succeeded later would be pointless, so the filter
(status, time range) applies to where each event stands now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import ColumnElement, and_, case, func, select

from sinks.db import database_errors
from sinks.integration.tables import DEAD, FAILED, SUCCEEDED, flows, run_bodies, runs
from synapseops.errors import RecordNotFound

MAX_PAGE = 500
MAX_RERUN = 10_000
SUMMARY_WINDOWS = {"last_hour": timedelta(hours=1), "last_day": timedelta(days=1)}

# The list view: everything but the (possibly large) request/response documents.
_SUMMARY_COLUMNS = [c for c in runs.c if c.name not in ("request", "response")]


@dataclass(frozen=True)
class RunFilter:
    """Every given criterion must hold; ``since``/``until`` bound ``started_at``."""

    flow_id: int | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def is_empty(self) -> bool:
        return self.flow_id is None and self.status is None and not (self.since or self.until)

    def clauses(self, table: Any) -> list[ColumnElement[bool]]:
        c = table.c
        out: list[ColumnElement[bool]] = []
        if self.flow_id is not None:
            out.append(c.flow_id == self.flow_id)
        if self.status is not None:
            out.append(c.status == self.status)
        if self.since is not None:
            out.append(c.started_at >= self.since)
        if self.until is not None:
            out.append(c.started_at < self.until)
        return out


def list_runs(
    engine: sqlalchemy.Engine,
    criteria: RunFilter,
    *,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first (by id); page with ``before_id``."""
    statement = select(*_SUMMARY_COLUMNS).where(*criteria.clauses(runs))
    if before_id is not None:
        statement = statement.where(runs.c.id < before_id)
    statement = statement.order_by(runs.c.id.desc()).limit(min(limit, MAX_PAGE))
    with database_errors("list runs"), engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def get_run(engine: sqlalchemy.Engine, run_id: int) -> dict[str, Any]:
    """One run in full; bodies stored apart come back as ``request_body``/``response_body``
    (text when UTF-8, else ``None`` with ``*_body_bytes`` giving the size)."""
    with database_errors("read run"), engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().one_or_none()
        if row is None:
            raise RecordNotFound(f"no run with id {run_id}")
        run = dict(row)
        for ref, name in (("body_ref", "request_body"), ("response_body_ref", "response_body")):
            run[name], run[f"{name}_bytes"] = None, None
            if run[ref] is not None:
                content = conn.execute(
                    select(run_bodies.c.content).where(run_bodies.c.id == run[ref])
                ).scalar_one_or_none()
                if content is not None:
                    run[f"{name}_bytes"] = len(content)
                    run[name] = _text(bytes(content))
    return run


def _text(content: bytes) -> str | None:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def runs_to_rerun(
    engine: sqlalchemy.Engine, criteria: RunFilter, *, limit: int = MAX_RERUN
) -> list[dict[str, Any]]:
    """The latest attempt of each (flow, source event) that matches ``criteria``, oldest
    first: ``[{id, flow_id, source_event_id, attempt, status}]``."""
    latest = (
        select(
            runs.c.id,
            runs.c.flow_id,
            runs.c.source_event_id,
            runs.c.attempt,
            runs.c.status,
            runs.c.started_at,
        )
        .distinct(runs.c.flow_id, runs.c.source_event_id)
        .order_by(runs.c.flow_id, runs.c.source_event_id, runs.c.attempt.desc(), runs.c.id.desc())
        .subquery("latest")
    )
    statement = (
        select(
            latest.c.id,
            latest.c.flow_id,
            latest.c.source_event_id,
            latest.c.attempt,
            latest.c.status,
        )
        .where(*criteria.clauses(latest))
        .order_by(latest.c.id)
        .limit(limit)
    )
    with database_errors("select runs to re-run"), engine.connect() as conn:
        return [dict(row) for row in conn.execute(statement).mappings()]


def flow_summary(engine: sqlalchemy.Engine, now: datetime | None = None) -> dict[str, Any]:
    """Active flows and, per flow, run counts and success rates over the last hour and day.

    The rate counts attempts: ``succeeded / (succeeded + failed + dead)``; running attempts
    are counted but not rated; ``None`` when nothing finished in the window.
    """
    now = now or datetime.now(UTC)
    columns: list[Any] = [flows.c.id, flows.c.name, flows.c.enabled]
    for window, span in SUMMARY_WINDOWS.items():
        since = now - span
        in_window = and_(runs.c.started_at >= since, runs.c.started_at <= now)
        for status in (None, SUCCEEDED, FAILED, DEAD):
            condition = in_window if status is None else and_(in_window, runs.c.status == status)
            label = f"{window}__{status or 'total'}"
            columns.append(func.count(case((condition, runs.c.id))).label(label))
    statement = (
        select(*columns)
        .select_from(flows.outerjoin(runs, runs.c.flow_id == flows.c.id))
        .group_by(flows.c.id)
        .order_by(flows.c.id)
    )
    with database_errors("flow summary"), engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(statement).mappings()]
    items = [_summary_item(row) for row in rows]
    return {
        "generated_at": now,
        "active_flows": sum(1 for item in items if item["enabled"]),
        "flows": items,
    }


def _summary_item(row: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"flow_id": row["id"], "name": row["name"], "enabled": row["enabled"]}
    for window in SUMMARY_WINDOWS:
        counts = {s: int(row[f"{window}__{s}"]) for s in ("total", SUCCEEDED, FAILED, DEAD)}
        finished = counts[SUCCEEDED] + counts[FAILED] + counts[DEAD]
        item[window] = {
            "runs": counts["total"],
            "succeeded": counts[SUCCEEDED],
            "failed": counts[FAILED],
            "dead": counts[DEAD],
            "running": counts["total"] - finished,
            "success_rate": round(counts[SUCCEEDED] / finished, 4) if finished else None,
        }
    return item
