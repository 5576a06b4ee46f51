"""CRM Automation's pages: sync overview (with full syncs), platforms, mappings (the builder:
field rules as rows with per-field policies, a live preview; ``crm-mapping-builder.js``),
conflicts, records.

Every read is a call of the ``/api/v1/crm/...`` route functions; every button and form calls
those routes with the user's session (role table and command path are the API's own).
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import PagesDep, UserDep
from api.deps import EngineDep
from api.routes.crm import full_syncs, mappings, platforms, sync
from sinks.crm import queries
from sinks.crm.tables import SIDES
from streams.crm.model import CrmMappingSpec, Directions, Policy

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
POLICIES: tuple[str, ...] = get_args(Policy)
DIRECTIONS: tuple[str, ...] = get_args(Directions)
HUBSPOT_OBJECTS: tuple[str, ...] = get_args(
    CrmMappingSpec.model_fields["hubspot_object"].annotation
)
# The type coercions a row offers (the mapping engine's plain transforms, plus to_decimal).
TYPES = ("to_str", "to_int", "to_float", "to_decimal", "to_bool", "trim", "upper", "lower")
SAMPLES: dict[str, dict[str, Any]] = {
    "salesforce": {
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Email": "ada@example.com",
        "Company": "Analytical Engines",
        "LeadSource": "Web",
        "Title": "CTO",
    },
    "hubspot": {
        "firstname": "Grace",
        "lastname": "Hopper",
        "email": "grace@example.com",
        "company": "Navy",
        "hs_lead_source": "ORGANIC_SEARCH",
    },
}


def direction_summary(pair: dict[str, Any], target: str) -> str:
    """A field pair's transforms and default toward ``target``, for people:
    ``"map Web→ORGANIC_SEARCH; to_str; default 'n/a'"``, or ``"—"`` when it copies as is."""
    parts: list[str] = []
    for step in pair.get(f"to_{target}") or ():
        op = step if isinstance(step, str) else step.get("op", "?")
        if op == "lookup" and isinstance(step, dict):
            table = ", ".join(f"{k}→{v}" for k, v in step.get("table", {}).items())
            parts.append(f"map {table}")
        else:
            parts.append(str(op))
    default = pair.get(f"{target}_default")
    if default is not None:
        parts.append(f"default {default!r}")
    return "; ".join(parts) or "—"


def _shown(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for mapping in found:
        for pair in mapping["spec"].get("fields", []):
            pair["shown"] = {side: direction_summary(pair, side) for side in SIDES}
    return found


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
        mappings=_shown([m.model_dump() for m in found]),
        platforms=known,
        policies=POLICIES,
        directions=DIRECTIONS,
        hubspot_objects=HUBSPOT_OBJECTS,
        samples=SAMPLES,
        builder={"template": TEMPLATE_SPEC, "policies": POLICIES, "types": TYPES},
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
