"""``/_sandbox`` controls of the two CRMs: seed them, edit behind the service's back, look.

* ``POST /_sandbox/crm/seed`` ``{salesforce: {Contact: 2500, Lead: 0, Opportunity: 0},
  hubspot: {contacts: 2500, deals: 0}, shared: 1000, seed: 1, emit_changes: false}``: people
  from :mod:`sandbox.crm_seed`; the first ``shared`` Salesforce people are HubSpot contacts
  too (same e-mail and values). Without ``emit_changes`` the records exist as if from before
  the change feeds began (no change events, no writes); with it they are an import. → the ids.
* ``POST /_sandbox/<platform>/edits`` ``{op: create|update|delete|undelete, object_type, id?,
  fields?, actor?: human|integration|import}``: a change made in the CRM itself — by a person
  unless ``actor`` says otherwise — with its change events.
* ``POST /_sandbox/crm/drift`` ``{platform, object_type, count, field?, op?: update|create|
  delete, seed?}``: ``count`` random such edits by a person → what was changed.
* ``GET /_sandbox/<platform>/writes?since=&actor=&object_type=&id=`` → ``{writes, last_seq}``
  (see :mod:`sandbox.crm`); ``GET /_sandbox/<platform>/records?object_type=&include_deleted=``
  → every record as the platform renders it.
* ``GET /_sandbox/crm/identities``; ``PUT /_sandbox/<platform>/identities {add_tokens,
  revoke_tokens, restore_tokens}`` (see :mod:`sandbox.identity`).
"""

from __future__ import annotations

import random
import uuid
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from sandbox import crm_seed
from sandbox.crm import CrmStore, WriteContext
from sandbox.gate import Refusal
from sandbox.hubspot import as_string, object_type, public
from sandbox.identity import Actor, Identities
from sandbox.salesforce import sobject
from sandbox.salesforce_rules import check_fields

router = APIRouter(prefix="/_sandbox", tags=["sandbox"])
Platform = Literal["salesforce", "hubspot"]


class Seed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    salesforce: dict[Literal["Contact", "Lead", "Opportunity"], int] = Field(default_factory=dict)
    hubspot: dict[Literal["contacts", "deals"], int] = Field(default_factory=dict)
    shared: int = Field(default=0, ge=0)
    seed: int = 1
    emit_changes: bool = False


class Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["create", "update", "delete", "undelete"]
    object_type: str
    id: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    actor: Literal["human", "integration", "import"] = "human"


class Drift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Platform
    object_type: str
    count: int = Field(default=1, ge=1, le=10_000)
    op: Literal["update", "create", "delete"] = "update"
    field: str | None = None
    seed: int | None = None


class TokenChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add_tokens: list[str] = Field(default_factory=list)
    revoke_tokens: list[str] = Field(default_factory=list)
    restore_tokens: list[str] = Field(default_factory=list)


def _side(request: Request, platform: str) -> tuple[CrmStore, Identities]:
    if platform not in ("salesforce", "hubspot"):
        raise HTTPException(404, f"unknown CRM {platform!r}; known: salesforce, hubspot")
    state = request.app.state.sandbox
    return getattr(state, platform), getattr(state, f"{platform}_identities")


def _context(actor: Actor, what: str) -> WriteContext:
    return WriteContext(actor=actor, transaction=str(uuid.uuid4()), method="CONTROL", path=what)


def _kind(platform: str, raw: str) -> str:
    if platform == "salesforce":
        return raw
    try:
        return object_type(raw)
    except Refusal as exc:  # the HubSpot refusal, as a control-plane 422
        raise HTTPException(422, f"unknown HubSpot object type {raw!r}") from exc


@router.post("/crm/seed")
async def seed(body: Seed, request: Request) -> dict[str, Any]:
    sf_store, sf_ids = _side(request, "salesforce")
    hs_store, hs_ids = _side(request, "hubspot")
    contacts, leads = body.salesforce.get("Contact", 0), body.salesforce.get("Lead", 0)
    hs_contacts = body.hubspot.get("contacts", 0)
    if body.shared > min(contacts + leads, hs_contacts):
        raise HTTPException(422, "shared cannot exceed either side's people")
    start = sf_store.count("Contact") + sf_store.count("Lead") + hs_store.count("contacts") + 1
    pool = crm_seed.people(contacts + leads + hs_contacts - body.shared, body.seed, start)
    rng, log = random.Random(body.seed), body.emit_changes
    sf_context, hs_context = _context(sf_ids.importer, "seed"), _context(hs_ids.importer, "seed")
    opportunities = [
        crm_seed.opportunity(rng, p) for p in pool[: body.salesforce.get("Opportunity", 0)]
    ]
    deals = [crm_seed.deal(rng, p) for p in pool[: body.hubspot.get("deals", 0)]]
    hubspot_people = pool[: body.shared] + pool[contacts + leads :]
    made = {
        "salesforce": {
            "Contact": sf_store.seed(
                "Contact", (p.salesforce("Contact") for p in pool[:contacts]), sf_context, log
            ),
            "Lead": sf_store.seed(
                "Lead",
                (p.salesforce("Lead") for p in pool[contacts : contacts + leads]),
                sf_context,
                log,
            ),
            "Opportunity": sf_store.seed("Opportunity", opportunities, sf_context, log),
        },
        "hubspot": {
            "contacts": hs_store.seed(
                "contacts",
                ({k: as_string(v) for k, v in p.hubspot().items()} for p in hubspot_people),
                hs_context,
                log,
            ),
            "deals": hs_store.seed("deals", deals, hs_context, log),
        },
    }
    counts = {side: {kind: len(ids) for kind, ids in kinds.items()} for side, kinds in made.items()}
    return {"counts": counts, "ids": made}


def _actor(identities: Identities, who: str) -> Actor:
    return {
        "human": identities.human,
        "integration": identities.integration,
        "import": identities.importer,
    }[who]


def apply_edit(request: Request, platform: str, edit: Edit) -> dict[str, Any]:
    records, identities = _side(request, platform)
    kind = _kind(platform, edit.object_type)
    context = _context(_actor(identities, edit.actor), f"edit {edit.op}")
    fields = (
        edit.fields
        if platform == "salesforce"
        else {k: as_string(v) for k, v in edit.fields.items()}
    )
    if platform == "salesforce" and edit.op in ("create", "update"):
        if errors := check_fields(kind, fields, creating=edit.op == "create"):
            raise HTTPException(422, [e.single() for e in errors])
    if edit.op == "create":
        return {"op": "create", "id": records.create(kind, fields, context).id}
    if edit.id is None:
        raise HTTPException(422, f"{edit.op} needs an id")
    if edit.op == "update":
        done = records.update(kind, edit.id, fields, context) is not None
    elif edit.op == "delete":
        done = records.delete(kind, edit.id, context) == "deleted"
    else:
        done = records.undelete(kind, edit.id, context) is not None
    if not done:
        raise HTTPException(404, f"no {kind} {edit.id} to {edit.op}")
    return {"op": edit.op, "id": edit.id}


@router.post("/{platform}/edits")
async def edit(platform: str, body: Edit, request: Request) -> dict[str, Any]:
    return apply_edit(request, platform, body)


@router.post("/crm/drift")
async def drift(body: Drift, request: Request) -> dict[str, Any]:
    records, _ = _side(request, body.platform)
    kind = _kind(body.platform, body.object_type)
    rng = random.Random(body.seed)
    if body.op == "create":
        made = []
        for person in crm_seed.people(
            body.count, rng.randrange(10**9), 10**6 + rng.randrange(10**8)
        ):
            fields = person.salesforce(kind) if body.platform == "salesforce" else person.hubspot()
            made.append(
                apply_edit(
                    request, body.platform, Edit(op="create", object_type=kind, fields=fields)
                )
            )
        return {"edited": made}
    alive = [r.id for r in records.records(kind)]
    chosen = rng.sample(alive, min(body.count, len(alive)))
    field = body.field or ("Title" if body.platform == "salesforce" else "jobtitle")
    edited = []
    for record_id in chosen:
        if body.op == "delete":
            edited.append(
                apply_edit(
                    request, body.platform, Edit(op="delete", object_type=kind, id=record_id)
                )
            )
            continue
        value = f"{rng.choice(crm_seed.TITLES)} (edited {rng.randrange(10**6)})"
        change = Edit(op="update", object_type=kind, id=record_id, fields={field: value})
        edited.append(
            {**apply_edit(request, body.platform, change), "field": field, "value": value}
        )
    return {"edited": edited}


@router.get("/{platform}/writes")
async def writes(platform: str, request: Request, since: int = 0) -> dict[str, Any]:
    records, _ = _side(request, platform)
    found = records.writes(since)
    wanted = {
        k: request.query_params[k]
        for k in ("actor", "object_type", "id")
        if k in request.query_params
    }
    found = [w for w in found if all(str(w.get(k)) == v for k, v in wanted.items())]
    return {"writes": found, "last_seq": found[-1]["seq"] if found else since}


@router.get("/{platform}/records")
async def records(
    platform: str, object_type: str, request: Request, include_deleted: bool = False
) -> dict[str, Any]:
    store, _ = _side(request, platform)
    kind = _kind(platform, object_type)
    found = store.records(kind, include_deleted=include_deleted)
    render = sobject if platform == "salesforce" else public
    return {"records": [render(r) for r in found], "count": len(found)}


@router.get("/crm/identities")
async def identities(request: Request) -> dict[str, Any]:
    return {p: _side(request, p)[1].describe() for p in ("salesforce", "hubspot")}


@router.put("/{platform}/identities")
async def change_tokens(platform: str, body: TokenChange, request: Request) -> dict[str, Any]:
    _, known = _side(request, platform)
    known.update(body.add_tokens, body.revoke_tokens, body.restore_tokens)
    return known.describe()
