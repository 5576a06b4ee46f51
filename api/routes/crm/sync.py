"""``/api/v1/crm/records`` and ``/api/v1/crm/conflicts``: what the sync linked and held.

A record is a link: the id on each side, the values as last synced, the watermarks and the
last error. A conflict is a field both sides changed under the ``manual`` policy, held with
both values; ``POST /crm/conflicts/{id}/resolve {choice: salesforce|hubspot}`` records the
person's choice and publishes a resolve command on ``crm.changes`` (keyed by the link, so it
lands behind the pair's changes); the sync writes the chosen value where it is missing and
closes the conflict. The answer is 202 once the broker has the command.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from api.bodies import body_schema, exact_body
from api.deps import EngineDep, PrincipalDep, ProducerDep
from api.publish import Command, publish_command
from sinks.crm import queries
from streams.crm.events import ResolveCommand, link_key
from synapseops.ids import new_traceparent
from topics.registry import CRM_CHANGES, CRM_RESOLVE

router = APIRouter(prefix="/crm", tags=["crm: records and conflicts"])
Id = Annotated[int, Path(ge=1)]


class RecordPublic(BaseModel):
    id: int
    mapping_id: int
    salesforce_id: str | None
    hubspot_id: str | None
    match_value: str | None
    salesforce_values: dict[str, Any]
    hubspot_values: dict[str, Any]
    salesforce_watermark: int
    hubspot_watermark: int
    deleted_at: datetime | None
    last_error: str | None
    last_synced_at: datetime | None
    created_at: datetime


class ConflictPublic(BaseModel):
    id: int
    mapping_id: int
    link_id: int
    field: str
    salesforce_value: str | None
    hubspot_value: str | None
    status: str
    choice: str | None
    resolved_by: str | None
    opened_at: datetime
    resolved_at: datetime | None


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    choice: Literal["salesforce", "hubspot"]


class ResolveAccepted(BaseModel):
    conflict_id: int
    choice: str
    command_id: str


@router.get("/records")
def list_records(
    engine: EngineDep,
    mapping_id: Annotated[int | None, Query(ge=1)] = None,
    failed: bool = False,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 100,
) -> list[RecordPublic]:
    rows = queries.links(engine, mapping_id, failed_only=failed, before_id=before_id, limit=limit)
    return [RecordPublic.model_validate(r) for r in rows]


@router.get("/conflicts")
def list_conflicts(
    engine: EngineDep,
    mapping_id: Annotated[int | None, Query(ge=1)] = None,
    status_: Annotated[Literal["open", "resolved", "all"], Query(alias="status")] = "open",
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 100,
) -> list[ConflictPublic]:
    rows = queries.conflicts(
        engine, mapping_id, None if status_ == "all" else status_, before_id, limit
    )
    return [ConflictPublic.model_validate(r) for r in rows]


@router.post(
    "/conflicts/{conflict_id}/resolve",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=body_schema(Resolve),
    responses={404: {"description": "no such conflict"}, 409: {"description": "not open"}},
)
async def resolve(
    conflict_id: Id,
    request: Request,
    engine: EngineDep,
    producer: ProducerDep,
    principal: PrincipalDep,
) -> ResolveAccepted:
    body = await exact_body(request, Resolve)
    row = await run_in_threadpool(queries.choose, engine, conflict_id, body.choice, principal.actor)
    command = ResolveCommand(conflict_id, body.choice)
    key = link_key(int(row["mapping_id"]), row["salesforce_id"], "salesforce", "")
    published = await publish_command(
        producer,
        Command(
            topic=CRM_CHANGES.name,
            kind=CRM_RESOLVE,
            name="crm.resolve",
            key=key,
            value=command.encode(),
            traceparent=new_traceparent(),
        ),
        {"conflict_id": conflict_id},
    )
    return ResolveAccepted(
        conflict_id=conflict_id, choice=body.choice, command_id=published.command_id
    )
