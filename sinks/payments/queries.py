"""Read-side queries of the Payment Gateway: what the settlements API and the console show.

Nothing here writes; the settlement pipeline owns the tables (``sinks/payments/tables.py``).
Every function takes the engine, runs blocking psycopg2 I/O (call it from a thread, never on
the event loop) and raises the error tree through :func:`sinks.db.database_errors`.

Days are UTC calendar days. Amounts are summed per currency only — never across currencies.

The reconciliation report is in :mod:`sinks.payments.reconciliation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import ColumnElement, func, select

from sinks.db import database_errors
from sinks.payments.tables import (
    payment_events,
    settlement_attempts,
    settlement_audit,
    settlements,
)


@dataclass(frozen=True)
class SettlementFilter:
    state: str | None = None
    currency: str | None = None  # upper-case ISO 4217
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until
    payment_id: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        c = settlements.c
        result: list[ColumnElement[bool]] = []
        if self.state is not None:
            result.append(c.state == self.state)
        if self.currency is not None:
            result.append(c.currency == self.currency)
        if self.since is not None:
            result.append(c.created_at >= self.since)
        if self.until is not None:
            result.append(c.created_at < self.until)
        if self.payment_id is not None:
            result.append(c.payment_id == self.payment_id)
        return result


@dataclass(frozen=True)
class SettlementTrail:
    """One settlement with everything that happened to it, oldest first."""

    settlement: dict[str, Any]
    events: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    audit: list[dict[str, Any]]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


# ---- settlements -----------------------------------------------------------------------


def list_settlements(
    engine: sqlalchemy.Engine, criteria: SettlementFilter, *, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Matching settlements, newest first, and how many match in all."""
    clauses = criteria.clauses()
    page = (
        select(settlements)
        .where(*clauses)
        .order_by(settlements.c.created_at.desc(), settlements.c.settlement_id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = select(func.count()).select_from(settlements).where(*clauses)
    with database_errors("settlements list"), engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(page).mappings()]
        return rows, int(conn.execute(total).scalar_one())


def get_settlement(engine: sqlalchemy.Engine, settlement_id: str) -> dict[str, Any] | None:
    statement = select(settlements).where(settlements.c.settlement_id == settlement_id)
    with database_errors("settlements get"), engine.connect() as conn:
        row = conn.execute(statement).mappings().first()
    return dict(row) if row is not None else None


def settlement_trail(engine: sqlalchemy.Engine, settlement_id: str) -> SettlementTrail | None:
    """The settlement, its Stripe events (raw bytes and headers), finance attempts and audit."""
    events = (
        select(payment_events)
        .where(payment_events.c.settlement_id == settlement_id)
        .order_by(payment_events.c.received_at, payment_events.c.id)
    )
    attempts = (
        select(settlement_attempts)
        .where(settlement_attempts.c.settlement_id == settlement_id)
        .order_by(settlement_attempts.c.started_at, settlement_attempts.c.id)
    )
    audit = (
        select(settlement_audit)
        .where(settlement_audit.c.settlement_id == settlement_id)
        .order_by(settlement_audit.c.at, settlement_audit.c.id)
    )
    # One transaction (REPEATABLE READ): the four reads see the same moment.
    with database_errors("settlement trail"), engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            row = (
                conn.execute(
                    select(settlements).where(settlements.c.settlement_id == settlement_id)
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            return SettlementTrail(
                settlement=dict(row),
                events=[dict(r) for r in conn.execute(events).mappings()],
                attempts=[dict(r) for r in conn.execute(attempts).mappings()],
                audit=[dict(r) for r in conn.execute(audit).mappings()],
            )


def daily_volumes(
    engine: sqlalchemy.Engine,
    *,
    since: date | None = None,
    until: date | None = None,
    currency: str | None = None,
) -> list[dict[str, Any]]:
    """Per UTC day of ``created_at`` (``since``..``until`` inclusive), currency and state:
    ``{day, currency, state, count, amount}``, oldest day first."""
    day = func.date(func.timezone("UTC", settlements.c.created_at)).label("day")
    clauses: list[ColumnElement[bool]] = []
    if since is not None:
        clauses.append(settlements.c.created_at >= day_bounds(since)[0])
    if until is not None:
        clauses.append(settlements.c.created_at < day_bounds(until)[1])
    if currency is not None:
        clauses.append(settlements.c.currency == currency)
    statement = (
        select(
            day,
            settlements.c.currency,
            settlements.c.state,
            func.count().label("count"),
            func.coalesce(func.sum(settlements.c.amount), 0).label("amount"),
        )
        .where(*clauses)
        .group_by(day, settlements.c.currency, settlements.c.state)
        .order_by(day, settlements.c.currency, settlements.c.state)
    )
    with database_errors("settlement volumes"), engine.connect() as conn:
        return [
            {**row, "count": int(row["count"]), "amount": int(row["amount"])}
            for row in conn.execute(statement).mappings()
        ]
