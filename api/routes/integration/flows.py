"""``/api/v1/flows``: a source endpoint bound to a target endpoint through a mapping.

``mapping_version`` is a number (pinned) or ``"latest"`` (each event uses the mapping's
newest version when it is delivered). ``GET /flows/summary`` feeds the dashboard: active flows
and run success rates per flow over the last hour and day (:func:`flow_summary`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import EngineDep
from sinks.integration import store
from sinks.integration.run_queries import flow_summary
from sinks.integration.tables import CONNECTOR_NAME_PATTERN, flows
from synapseops.errors import RecordInvalid, RecordNotFound

router = APIRouter(prefix="/flows", tags=["integration: flows"])

Id = Annotated[int, Path(ge=1)]
VersionChoice = Annotated[int, Field(ge=1)] | Literal["latest"]


class FlowCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=CONNECTOR_NAME_PATTERN)
    source_endpoint_id: int = Field(ge=1)
    target_endpoint_id: int = Field(ge=1)
    credential_id: int | None = Field(default=None, ge=1)
    mapping_id: int = Field(ge=1)
    mapping_version: VersionChoice = "latest"
    enabled: bool = True


class FlowUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_endpoint_id: int | None = Field(default=None, ge=1)
    target_endpoint_id: int | None = Field(default=None, ge=1)
    credential_id: int | None = Field(default=None, ge=1)
    mapping_id: int | None = Field(default=None, ge=1)
    mapping_version: VersionChoice | None = None
    enabled: bool | None = None


class FlowPublic(FlowCreate):
    model_config = ConfigDict(extra="ignore")

    id: int
    created_at: datetime
    updated_at: datetime

    @field_validator("mapping_version", mode="before")
    @classmethod
    def _null_is_latest(cls, value: Any) -> Any:
        return "latest" if value is None else value


class WindowStats(BaseModel):
    runs: int
    succeeded: int
    failed: int
    dead: int
    running: int
    success_rate: float | None = Field(description="succeeded / finished attempts; null if none")


class FlowStats(BaseModel):
    flow_id: int
    name: str
    enabled: bool
    last_hour: WindowStats
    last_day: WindowStats


class FlowSummary(BaseModel):
    generated_at: datetime
    active_flows: int
    flows: list[FlowStats]


def _row_values(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("mapping_version") == "latest":
        values["mapping_version"] = None
    return values


def _check(engine: Any, values: dict[str, Any], current: dict[str, Any] | None = None) -> None:
    """Endpoints face the right way; a pinned mapping version exists (422 otherwise)."""
    store.check_flow_endpoints(engine, values)
    merged = {**(current or {}), **values}
    if "mapping_id" in values or "mapping_version" in values:
        try:
            store.resolve_mapping(engine, int(merged["mapping_id"]), merged["mapping_version"])
        except RecordNotFound as exc:
            raise RecordInvalid(str(exc)) from exc


@router.get("/summary", summary="Active flows and run success rates (last hour, last day)")
def get_flow_summary(engine: EngineDep) -> FlowSummary:
    return FlowSummary.model_validate(flow_summary(engine))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "name taken"}, 422: {"description": "invalid references"}},
)
def create_flow(body: FlowCreate, engine: EngineDep) -> FlowPublic:
    values = _row_values(body.model_dump())
    _check(engine, values)
    return FlowPublic.model_validate(store.insert_row(engine, flows, values))


@router.get("")
def list_flows(engine: EngineDep) -> list[FlowPublic]:
    return [FlowPublic.model_validate(row) for row in store.list_rows(engine, flows)]


@router.get("/{flow_id}", responses={404: {"description": "no such flow"}})
def get_flow(flow_id: Id, engine: EngineDep) -> FlowPublic:
    return FlowPublic.model_validate(store.get_row(engine, flows, flow_id))


@router.patch(
    "/{flow_id}",
    responses={404: {"description": "no such flow"}, 422: {"description": "invalid references"}},
)
def update_flow(flow_id: Id, body: FlowUpdate, engine: EngineDep) -> FlowPublic:
    values = _row_values(body.model_dump(exclude_unset=True))
    current = store.get_row(engine, flows, flow_id)
    _check(engine, values, current)
    return FlowPublic.model_validate(store.update_row(engine, flows, flow_id, values))


@router.delete(
    "/{flow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "no such flow"}},
)
def delete_flow(flow_id: Id, engine: EngineDep) -> None:
    """Deletes the flow and its runs; disable it (``enabled: false``) to keep the history."""
    store.delete_row(engine, flows, flow_id)
