"""``/api/v1/mappings``: versioned mapping rules and the live preview of the mapping editor.

Every save is a new immutable version (1, 2, 3 …); flows pin one or follow the latest. Rules
are validated with :func:`streams.mapping.compile_mapping` before they are stored: invalid
rules answer 422 with one problem per line, each naming its rule. Bodies are read and answered
with exact numbers (:mod:`api.bodies`): ``409.94`` never becomes a float.

Errors, in previews and 422s alike, are objects with at least ``message``
(``"rule 3 (erp.total): to_float failed on 'abc' at total_price"``), plus ``rule``/``target``
when the message names them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.bodies import body_schema, exact_body, exact_json
from api.deps import EngineDep
from sinks.integration import store
from sinks.integration.tables import CONNECTOR_NAME_PATTERN, mappings
from streams.mapping import compile_mapping, jsonable
from synapseops.errors import MappingSpecInvalid

router = APIRouter(prefix="/mappings", tags=["integration: mappings"])

Id = Annotated[int, Path(ge=1)]
Rules = dict[str, Any] | list[Any]
_LABEL = re.compile(r"^rule ([0-9.]+) \(([^)]*)\): ")


class MappingCreate(BaseModel):
    """``rules``: a mapping (``{"rules": [...]}``) or just its list of rules."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=CONNECTOR_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=2000)
    rules: Rules
    created_by: str | None = Field(default=None, max_length=200)


class MappingVersionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: Rules
    created_by: str | None = Field(default=None, max_length=200)


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: Rules
    payload: Any


class MappingPublic(BaseModel):
    id: int
    name: str
    description: str | None
    created_at: datetime
    latest_version: int | None


class MappingVersionPublic(BaseModel):
    mapping_id: int
    version: int
    rules: dict[str, Any]
    created_at: datetime
    created_by: str | None


class MappingCreated(MappingPublic):
    version: MappingVersionPublic


class MappingInvalid(BaseModel):
    detail: str
    errors: list[dict[str, Any]]


_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": MappingInvalid, "description": "the rules do not compile"}
}


def _spec(rules: Rules) -> dict[str, Any]:
    return {"rules": rules} if isinstance(rules, list) else rules


def _problem(message: str) -> dict[str, Any]:
    match = _LABEL.match(message)
    if match is None:
        return {"message": message, "rule": None, "target": None}
    return {"message": message, "rule": match.group(1), "target": match.group(2)}


def _invalid(exc: MappingSpecInvalid) -> Response:
    body = {
        "detail": "the mapping rules are invalid",
        "errors": [_problem(p) for p in exc.problems],
    }
    return exact_json(body, status.HTTP_422_UNPROCESSABLE_CONTENT)


@router.post(
    "/preview",
    openapi_extra=body_schema(PreviewRequest),
    responses={
        200: {"description": "`{output}` when every rule succeeded, else `{output: null, errors}`"},
        **_INVALID,
    },
)
async def preview_mapping(request: Request) -> Response:
    """Apply ``rules`` to the sample ``payload`` without storing anything."""
    body = await exact_body(request, PreviewRequest)
    try:
        compiled = compile_mapping(_spec(body.rules))
    except MappingSpecInvalid as exc:
        return _invalid(exc)
    result = compiled.apply(body.payload)
    if result.ok:
        return exact_json({"output": result.output, "errors": []})
    return exact_json({"output": None, "errors": [jsonable(e.to_dict()) for e in result.errors]})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=body_schema(MappingCreate),
    responses={201: {"model": MappingCreated}, 409: {"description": "name taken"}, **_INVALID},
)
async def create_mapping(request: Request, engine: EngineDep) -> Response:
    body = await exact_body(request, MappingCreate)
    spec = _spec(body.rules)
    try:
        compile_mapping(spec)
    except MappingSpecInvalid as exc:
        return _invalid(exc)
    row = await run_in_threadpool(
        store.create_mapping,
        engine,
        name=body.name,
        rules=spec,
        description=body.description,
        created_by=body.created_by,
    )
    return exact_json(row, status.HTTP_201_CREATED)


@router.get("")
def list_mappings(engine: EngineDep) -> list[MappingPublic]:
    return [MappingPublic.model_validate(row) for row in store.list_mappings(engine)]


@router.get("/{mapping_id}", responses={404: {"description": "no such mapping"}})
def get_mapping(mapping_id: Id, engine: EngineDep) -> MappingPublic:
    return MappingPublic.model_validate(store.get_mapping(engine, mapping_id))


@router.delete(
    "/{mapping_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such mapping"}, 409: {"description": "a flow uses it"}},
)
def delete_mapping(mapping_id: Id, engine: EngineDep) -> None:
    store.delete_row(engine, mappings, mapping_id)


@router.post(
    "/{mapping_id}/versions",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=body_schema(MappingVersionCreate),
    responses={
        201: {"model": MappingVersionPublic},
        404: {"description": "no such mapping"},
        **_INVALID,
    },
)
async def save_mapping_version(mapping_id: Id, request: Request, engine: EngineDep) -> Response:
    """Save: a new version n+1; earlier versions stay exactly as they were."""
    body = await exact_body(request, MappingVersionCreate)
    spec = _spec(body.rules)
    try:
        compile_mapping(spec)
    except MappingSpecInvalid as exc:
        return _invalid(exc)
    row = await run_in_threadpool(
        store.save_mapping_version, engine, mapping_id, spec, created_by=body.created_by
    )
    return exact_json(row, status.HTTP_201_CREATED)


@router.get(
    "/{mapping_id}/versions",
    responses={200: {"model": list[MappingVersionPublic]}, 404: {"description": "no mapping"}},
)
def list_mapping_versions(mapping_id: Id, engine: EngineDep) -> Response:
    return exact_json(store.list_mapping_versions(engine, mapping_id))


@router.get(
    "/{mapping_id}/versions/{version}",
    responses={200: {"model": MappingVersionPublic}, 404: {"description": "no such version"}},
)
def get_mapping_version(
    mapping_id: Id, version: Annotated[int, Path(ge=1)], engine: EngineDep
) -> Response:
    return exact_json(store.get_mapping_version(engine, mapping_id, version))
