"""The Payment Gateway's pages: dashboard, settlements, failed + dead letters, audit trail,
reconciliation.

Every read is a call of the ``/api/v1/settlements`` (and ``/api/v1/dead-letters``) route
functions with the page's filters; approve / reject / Replay are buttons calling those routes
with the user's session, so the role table and the command path are the API's own.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import ZERO_DECIMAL, PagesDep, UserDep, parse_moment
from api.deps import EngineDep
from api.routes.dead_letters import ReplayDep, list_dead_letters
from api.routes.payments import settlements as api
from api.routes.payments.settlement_models import DailyVolume
from topics.registry import PAYMENT_SETTLEMENT

BASE = "/services/payment-gateway"
router = APIRouter(prefix=BASE, include_in_schema=False)

STATES = ("pending", "pending_approval", "settled", "failed")
CHART_DAYS = 14
PAGE = 50


def _unit(currency: str) -> int:
    return 1 if currency.upper() in ZERO_DECIMAL else 100


def volume_chart(rows: list[DailyVolume], days: int = CHART_DAYS) -> dict[str, Any]:
    """uPlot data: one point per UTC day, one series per (currency, state), major units."""
    today = datetime.now(UTC).date()
    axis = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    amounts: dict[tuple[str, str], dict[date, int]] = defaultdict(dict)
    for row in rows:
        amounts[(row.currency, row.state)][row.day] = row.amount
    series = [
        {
            "label": f"{currency} {state.replace('_', ' ')}",
            "values": [by_day.get(day, 0) / _unit(currency) for day in axis],
        }
        for (currency, state), by_day in sorted(amounts.items())
    ]
    x = [int(datetime.combine(day, time.min, tzinfo=UTC).timestamp()) for day in axis]
    return {"x": x if series else [], "series": series}


@router.get("", response_class=HTMLResponse)
async def dashboard(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, replay: ReplayDep
) -> HTMLResponse:
    since = datetime.now(UTC).date() - timedelta(days=CHART_DAYS - 1)
    volumes = await run_in_threadpool(api.daily_volumes, engine, since=since)
    waiting = await run_in_threadpool(
        api.list_settlements, engine, state="pending_approval", limit=20
    )
    failed = await run_in_threadpool(api.list_settlements, engine, state="failed", limit=5)
    dead = await run_in_threadpool(
        list_dead_letters, replay, pipeline=PAYMENT_SETTLEMENT, status_="dead", limit=5
    )
    today = [row for row in volumes.items if row.day == datetime.now(UTC).date()]
    return pages.render(
        request,
        "payments/dashboard.html",
        user,
        chart_data=volume_chart(volumes.items),
        volumes=volumes.items,
        today=today,
        waiting=waiting,
        failed=failed,
        dead=dead.items,
    )


@router.get("/settlements", response_class=HTMLResponse)
async def settlement_list(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    engine: EngineDep,
    state: str | None = None,
    currency: str | None = None,
    payment_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    found = await run_in_threadpool(
        api.list_settlements,
        engine,
        state=cast(api.State, state) if state in STATES else None,
        currency=currency or None,
        payment_id=payment_id or None,
        since=parse_moment(since),
        until=parse_moment(until),
        limit=PAGE,
        offset=offset,
    )
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "part")]
    following = found.next_offset
    return pages.render(
        request,
        "payments/settlements.html",
        user,
        found=found,
        states=STATES,
        form=dict(request.query_params),
        older=f"?{urlencode([*kept, ('offset', str(following))])}" if following else None,
    )


@router.get("/failed", response_class=HTMLResponse)
async def failed_page(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    engine: EngineDep,
    replay: ReplayDep,
    error_class: str | None = None,
) -> HTMLResponse:
    dead = await run_in_threadpool(
        list_dead_letters,
        replay,
        pipeline=PAYMENT_SETTLEMENT,
        error_class=error_class or None,
        status_="dead",
        limit=200,
    )
    failed = await run_in_threadpool(api.list_settlements, engine, state="failed", limit=PAGE)
    bulk = {"pipeline": PAYMENT_SETTLEMENT, **({"error_class": error_class} if error_class else {})}
    return pages.render(
        request,
        "payments/failed.html",
        user,
        dead=dead.items,
        failed=failed,
        bulk=bulk,
        error_class=error_class or "",
        classes=sorted({item.error_class or "unknown" for item in dead.items}),
    )


@router.get("/settlements/{settlement_id}", response_class=HTMLResponse)
async def settlement_page(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, settlement_id: str
) -> HTMLResponse:
    detail = await run_in_threadpool(api.get_settlement, engine, settlement_id)
    return pages.render(request, "payments/settlement.html", user, s=detail)


@router.get("/reconciliation", response_class=HTMLResponse)
async def reconciliation_page(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    engine: EngineDep,
    day: date | None = None,
) -> HTMLResponse:
    chosen = day or datetime.now(UTC).date()
    report = await run_in_threadpool(api.reconciliation, engine, chosen)
    buckets = [(name, getattr(report, name)) for name in (
        "settled", "failed", "dead", "pending_approval", "pending", "no_effect",
    )]  # fmt: skip
    return pages.render(
        request,
        "payments/reconciliation.html",
        user,
        report=report,
        buckets=buckets,
        previous=chosen - timedelta(days=1),
        following=chosen + timedelta(days=1),
    )
