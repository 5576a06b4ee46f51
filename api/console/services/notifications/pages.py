"""SaaS Notifications in the console: workflows and their runs, channels (with a test
message), the Pending Approvals inbox, and the confirmation page of a signed link.

Reads call the ``/api/v1`` route functions; every button calls the JSON API with the user's
session and CSRF token, so the role table is the API's own (a viewer sees no button). A signed
approve/reject link opens :func:`link_page` — a GET that only shows the question and a button;
the answer is that button's POST, by the logged-in user, with the link's token checked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import PagesDep, UserDep
from api.deps import EngineDep, SettingsDep
from api.routes.notifications import approvals as inbox
from api.routes.notifications import channels as channel_api
from sinks.notifications import queries
from synapseops.errors import ApprovalLinkInvalid

BASE = "/services/notifications"
router = APIRouter(prefix=BASE, include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def dashboard(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    health = await run_in_threadpool(queries.workflow_health, engine)
    recent, _ = await run_in_threadpool(
        queries.list_runs, engine, state=None, workflow_id=None, limit=20, offset=0
    )
    return pages.render(
        request, "notifications/dashboard.html", user, workflows=health, runs=recent
    )


@router.get("/channels", response_class=HTMLResponse)
async def channels(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, settings: SettingsDep
) -> HTMLResponse:
    found = await run_in_threadpool(channel_api.list_channels, engine, settings)
    return pages.render(request, "notifications/channels.html", user, channels=found)


@router.get("/approvals", response_class=HTMLResponse)
async def approvals(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, state: str = "pending"
) -> HTMLResponse:
    chosen: Any = state if state in ("pending", "approved", "rejected", "expired") else None
    found = await run_in_threadpool(inbox.list_approvals, engine, state=chosen, limit=100)
    return pages.render(
        request, "notifications/approvals.html", user, found=found, state=chosen or "all"
    )


@router.get("/approvals/link/{token}", response_class=HTMLResponse)
async def link_page(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    engine: EngineDep,
    settings: SettingsDep,
    token: str,
) -> HTMLResponse:
    """What a signed link opens: the question and one button. Never answers on a GET."""
    problem, approval, decision = None, None, None
    try:
        claim = inbox.links_of(settings).read(token)
        decision = claim.decision
        rows, _ = await run_in_threadpool(
            queries.list_approvals, engine, state=None, limit=1, offset=0,
            approval_id=claim.approval_id,
        )  # fmt: skip
        approval = inbox._public(rows[0]) if rows else None
        if approval is None:
            problem = "this approval no longer exists"
    except ApprovalLinkInvalid as exc:
        problem = str(exc)
    return pages.render(
        request,
        "notifications/link.html",
        user,
        problem=problem,
        approval=approval,
        decision=decision,
        token=token,
    )
