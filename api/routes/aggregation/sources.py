"""``/api/v1/aggregation/sources``: DataSources — CRUD, pause/resume, and test.

``kind`` is ``poll`` (an API polled with its own rules: ``config.url``, ``per_page``),
``stream`` (OTLP at ``/v1/logs`` or a topic; gets an ingest token, shown once) or ``bulk``
(files uploaded through the API). ``logic`` names its TransformationLogic. ``POST
/{name}/test`` runs the source's logic on a sample payload and answers the canonical events
it makes or the reason it cannot (nothing is published).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import EngineDep
from sinks.aggregation import sources as store
from streams.aggregation.logic.common import Context
from streams.aggregation.transform import LOGIC, transform_payload
from synapseops.errors import PayloadUntransformable, RecordInvalid
from synapseops.ids import new_traceparent, trace_id_of

router = APIRouter(prefix="/aggregation/sources", tags=["aggregation: sources"])

Kind = Literal["poll", "stream", "bulk"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"
SOURCE_TYPES = {"poll": "api_polling", "stream": "stream", "bulk": "bulk_upload"}


def _known_logic(value: str | None) -> str | None:
    if value is not None and value not in LOGIC:
        raise ValueError(f"unknown logic {value!r}; known: {sorted(LOGIC)}")
    return value


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: Kind
    logic: str
    config: dict[str, Any] = Field(default_factory=dict)
    schedule_s: int | None = Field(default=None, ge=1, le=86_400)

    _logic = field_validator("logic")(_known_logic)


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    logic: str | None = None
    config: dict[str, Any] | None = None
    schedule_s: int | None = Field(default=None, ge=1, le=86_400)

    _logic = field_validator("logic")(_known_logic)


class SourcePublic(BaseModel):
    id: Any
    name: str
    kind: Kind
    logic: str
    logic_version: int
    config: dict[str, Any]
    schedule_s: int | None
    paused: bool
    created_at: datetime
    updated_at: datetime


class SourceCreated(SourcePublic):
    token: str | None = Field(
        default=None, description="the ingest token of a stream source; shown this once"
    )


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: Any


class TestAnswer(BaseModel):
    ok: bool
    events: list[dict[str, Any]] = Field(default_factory=list)
    reason: str | None = None


@router.get("", response_model=list[SourcePublic])
def list_sources(engine: EngineDep) -> list[dict[str, Any]]:
    return store.list_sources(engine)


@router.post("", response_model=SourceCreated, status_code=status.HTTP_201_CREATED)
def create_source(body: SourceCreate, engine: EngineDep) -> dict[str, Any]:
    values = body.model_dump() | {"logic_version": LOGIC[body.logic].VERSION}
    created, token = store.create_source(engine, values)
    return created | {"token": token}


@router.get("/{name}", response_model=SourcePublic)
def get_source(name: str, engine: EngineDep) -> dict[str, Any]:
    return store.get_source(engine, name)


@router.patch("/{name}", response_model=SourcePublic)
def update_source(name: str, body: SourceUpdate, engine: EngineDep) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=True)
    if values.get("config", {}) is None or values.get("logic", "") is None:
        raise RecordInvalid("logic and config cannot be null")
    if "logic" in values:
        values["logic_version"] = LOGIC[values["logic"]].VERSION
    return store.update_source(engine, name, values)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_source(name: str, engine: EngineDep) -> None:
    store.delete_source(engine, name)


@router.post("/{name}/pause", response_model=SourcePublic)
def pause_source(name: str, engine: EngineDep) -> dict[str, Any]:
    return store.update_source(engine, name, {"paused": True})


@router.post("/{name}/resume", response_model=SourcePublic)
def resume_source(name: str, engine: EngineDep) -> dict[str, Any]:
    return store.update_source(engine, name, {"paused": False})


@router.post("/{name}/test", response_model=TestAnswer)
def test_source(name: str, body: TestRequest, engine: EngineDep) -> TestAnswer:
    source = store.get_source(engine, name)
    context = Context(
        source=source["name"],
        source_type=SOURCE_TYPES[source["kind"]],
        ingested_at=datetime.now(UTC),
        trace_id=trace_id_of(new_traceparent()) or "0" * 32,
    )
    try:
        events = transform_payload(source["logic"], body.payload, context)
    except PayloadUntransformable as exc:
        return TestAnswer(ok=False, reason=str(exc))
    return TestAnswer(ok=True, events=[event.model_dump(mode="json") for event in events])
