"""CRM Automation's pages: sync overview (with full syncs), platforms, mappings (the builder
with per-field policies and a preview), conflicts, records.

Every read is a call of the ``/api/v1/crm/...`` route functions; every button and form calls
those routes with the user's session (role table and command path are the API's own).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import PagesDep, UserDep
from api.deps import EngineDep
from api.routes.crm import full_syncs, mappings, platforms, sync
from sinks.crm import queries
from sinks.crm.tables import SIDES

BASE = "/services/crm-automation"
router = APIRouter(prefix=BASE, include_in_schema=False)

TEMPLATE_SPEC: dict[str, Any] = {
    "salesforce_object": "Lead",
    "hubspot_object": "contacts",
    "match": {"salesforce": "Email", "hubspot": "email"},
    "fields": [
        {"salesforce": "FirstName", "hubspot": "firstname", "policy": "last_writer_wins"},
        {"salesforce": "LastName", "hubspot": "lastname", "policy": "last_writer_wins"},
        {"salesforce": "Company", "hubspot": "company", "policy": "source_wins"},
        {"salesforce": "LeadSource", "hubspot": "hs_lead_source", "policy": "fill_if_empty"},
        {"salesforce": "Title", "hubspot": "jobtitle", "policy": "manual"},
    ],
    "directions": "both",
    "source_side": "salesforce",
    "delete_policy": "propagate",
}
POLICIES = ("last_writer_wins", "source_wins", "fill_if_empty", "manual")


def _overview(engine: Any) -> dict[str, Any]:
    found = [m.model_dump() for m in mappings.list_mappings(engine)]
    states = queries.sync_states(engine)
    opened = queries.open_conflicts(engine)
    for mapping in found:
        mapping["states"] = {s["side"]: s for s in states if s["mapping_id"] == mapping["id"]}
        mapping["open_conflicts"] = opened.get(mapping["id"], 0)
        mapping["full_syncs"] = full_syncs.list_full_syncs(mapping["id"], engine)[:3]
    return {"mappings": found, "sides": SIDES}


@router.get("", response_class=HTMLResponse)
async def overview(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    context = await run_in_threadpool(_overview, engine)
    return pages.render(request, "crm/overview.html", user, **context)


@router.get("/platforms", response_class=HTMLResponse)
async def platform_list(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    found = await run_in_threadpool(platforms.list_platforms, engine)
    return pages.render(request, "crm/platforms.html", user, platforms=found)


@router.get("/mappings", response_class=HTMLResponse)
async def mapping_list(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    found = await run_in_threadpool(mappings.list_mappings, engine)
    known = await run_in_threadpool(platforms.list_platforms, engine)
    return pages.render(
        request,
        "crm/mappings.html",
        user,
        mappings=found,
        platforms=known,
        policies=POLICIES,
        spec_template=json.dumps(TEMPLATE_SPEC, indent=2),
    )


@router.get("/conflicts", response_class=HTMLResponse)
async def conflict_list(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep
) -> HTMLResponse:
    found = await run_in_threadpool(sync.list_conflicts, engine, None, "all", None, 200)
    return pages.render(request, "crm/conflicts.html", user, conflicts=found)


@router.get("/records", response_class=HTMLResponse)
async def record_list(
    request: Request, user: UserDep, pages: PagesDep, engine: EngineDep, failed: bool = False
) -> HTMLResponse:
    found = await run_in_threadpool(sync.list_records, engine, None, failed, None, 200)
    return pages.render(request, "crm/records.html", user, records=found, failed=failed)
