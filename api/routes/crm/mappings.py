"""``/api/v1/crm/mappings``: field mappings between a Salesforce and a HubSpot object.

A mapping's ``spec`` (:class:`~streams.crm.model.CrmMappingSpec`) names the objects, the field
pairs with their transforms each way and their conflict policy, the match key, the directions
and the delete policy; it is compiled by the mapping engine on write (422 with every problem).
Creating one creates its two sync states (change-feed cursors empty: the feeds are read from
the oldest change they keep). ``POST /crm/mappings/preview`` maps sample records with a spec
(changes nothing); ``POST /crm/mappings/{id}/preview`` reads the first record of each side
(or the ones named) and shows what each would become on the other side.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.bodies import body_schema, exact_body, validation_detail
from api.deps import EngineDep, SettingsDep
from sinks.crm import queries, store
from streams.crm.model import CompiledCrmMapping, compile_crm_mapping
from streams.mapping import jsonable
from synapseops.errors import MappingSpecInvalid, RecordInvalid

router = APIRouter(prefix="/crm/mappings", tags=["crm: mappings"])
Id = Annotated[int, Path(ge=1)]


class MappingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9](?:[a-z0-9_-]{0,62})$")
    salesforce_platform_id: int = Field(ge=1)
    hubspot_platform_id: int = Field(ge=1)
    spec: dict[str, Any]
    poll_interval_s: float = Field(default=2.0, ge=0.2, le=3600)


class MappingPublic(BaseModel):
    id: int
    name: str
    salesforce_platform_id: int
    hubspot_platform_id: int
    spec: dict[str, Any]
    enabled: bool
    poll_interval_s: float
    created_at: datetime
    updated_at: datetime


class Preview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any]
    salesforce: dict[str, Any] | None = None
    hubspot: dict[str, Any] | None = None


class PreviewResult(BaseModel):
    """What each side's record becomes on the other side (``errors``: the rules it breaks)."""

    to_hubspot: dict[str, Any] | None = None
    to_salesforce: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)
    salesforce: dict[str, Any] | None = None
    hubspot: dict[str, Any] | None = None


def checked(raw: dict[str, Any]) -> CompiledCrmMapping:
    try:
        return compile_crm_mapping(0, raw)
    except ValidationError as exc:
        raise RecordInvalid(f"spec: {validation_detail(exc)}") from None
    except MappingSpecInvalid as exc:
        raise RecordInvalid(f"spec: {exc}") from None


def preview_of(
    mapping: CompiledCrmMapping, sf: dict[str, Any] | None, hs: dict[str, Any] | None
) -> PreviewResult:
    result = PreviewResult(salesforce=sf, hubspot=hs)
    for record, compiled, name in (
        (sf, mapping.to_hubspot, "to_hubspot"),
        (hs, mapping.to_salesforce, "to_salesforce"),
    ):
        if record is None:
            continue
        applied = compiled.apply(record)
        if applied.ok and applied.output is not None:
            setattr(result, name, jsonable(applied.output))
        result.errors += [{"direction": name, **e.to_dict()} for e in applied.errors]
    return result


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=body_schema(MappingCreate),
    responses={409: {"description": "name taken"}, 422: {"description": "invalid spec"}},
)
async def create_mapping(request: Request, engine: EngineDep) -> MappingPublic:
    body = await exact_body(request, MappingCreate)
    spec = checked(body.spec).spec
    row = await run_in_threadpool(
        store.create_mapping,
        engine,
        body.name,
        body.salesforce_platform_id,
        body.hubspot_platform_id,
        spec,
        body.poll_interval_s,
    )
    return MappingPublic.model_validate(row)


@router.get("")
def list_mappings(engine: EngineDep) -> list[MappingPublic]:
    return [MappingPublic.model_validate(r) for r in store.list_mappings(engine)]


@router.get("/{mapping_id}", responses={404: {"description": "no such mapping"}})
def get_mapping(mapping_id: Id, engine: EngineDep) -> MappingPublic:
    return MappingPublic.model_validate(store.get_mapping(engine, mapping_id))


@router.get("/{mapping_id}/sync-states", responses={404: {"description": "no such mapping"}})
def sync_states(mapping_id: Id, engine: EngineDep) -> list[dict[str, Any]]:
    store.get_mapping(engine, mapping_id)
    return [jsonable(_iso(r)) for r in queries.sync_states(engine, mapping_id)]


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


@router.post("/preview", openapi_extra=body_schema(Preview))
async def preview(request: Request) -> PreviewResult:
    body = await exact_body(request, Preview)
    return preview_of(checked(body.spec), body.salesforce, body.hubspot)


@router.post("/{mapping_id}/preview", responses={404: {"description": "no such mapping"}})
async def preview_sample(mapping_id: Id, engine: EngineDep, settings: SettingsDep) -> PreviewResult:
    """The first record of each side (as the platform has it now), mapped each way."""
    row = await run_in_threadpool(store.get_mapping, engine, mapping_id)
    mapping = store.compiled(row)
    samples: dict[str, dict[str, Any] | None] = {}
    for side in ("salesforce", "hubspot"):
        access = await run_in_threadpool(
            store.open_platform, engine, settings, int(row[f"{side}_platform_id"])
        )
        client = store.client_for(access, settings)
        try:
            sample = await client.sample(
                mapping.spec.salesforce_object
                if side == "salesforce"
                else mapping.spec.hubspot_object,
                [*mapping.fields_of(side), mapping.match_field(side)],
            )
        finally:
            await client.aclose()
        samples[side] = dict(sample.fields) if sample is not None else None
    return preview_of(mapping, samples["salesforce"], samples["hubspot"])
