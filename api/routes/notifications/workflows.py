"""``/api/v1/notification-workflows`` and ``/api/v1/notification-runs``.

Workflows: CRUD, every save a new version (runs keep theirs), enable/disable, a dry run on a
sample trigger (nothing sent), and a template preview. A workflow is checked when saved: its
steps' shapes, its templates (they must parse), and the channels it names must exist.
Runs: the list (by state, by workflow) and one run with its steps, messages and receipts, and
what it waits on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import EngineDep, PrincipalDep, SettingsDep
from schemas.models import NotificationTrigger
from sinks.notifications import queries
from sinks.notifications.config import ConfigStore
from sinks.notifications.secrets import SecretBox
from streams.notifications.dry_run import dry_run, preview_message
from streams.notifications.messages import Message
from streams.notifications.model import WorkflowSpec
from streams.notifications.templates import check, render
from synapseops.errors import RecordInvalid, TemplateFailed

router = APIRouter(prefix="/notification-workflows", tags=["notifications"])
runs_router = APIRouter(prefix="/notification-runs", tags=["notifications"])


class WorkflowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    trigger_kind: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")
    enabled: bool = True
    spec: WorkflowSpec


class WorkflowPublic(BaseModel):
    id: int
    name: str
    trigger_kind: str
    enabled: bool
    version: int
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trigger: dict[str, Any]
    context: dict[str, Any] = Field(default_factory=dict)


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(default="{{ summary }}", max_length=4000)
    text: str = Field(default="{{ summary }}", max_length=4000)
    channel_kind: str | None = None
    trigger: dict[str, Any]


def _store(engine: Any, settings: Any) -> ConfigStore:
    return ConfigStore(engine, SecretBox(settings))


def _sample(data: dict[str, Any]) -> NotificationTrigger:
    sample = {
        "pipeline": "sample",
        "subject_id": "sample-1",
        "summary": "a sample trigger",
        "occurred_at": datetime.now(UTC).isoformat(),
        "trace_id": "0" * 32,
        **data,
    }
    try:
        return NotificationTrigger.model_validate(sample)
    except ValueError as exc:
        raise RecordInvalid(f"the sample trigger is invalid: {exc}") from exc


def _checked(store: ConfigStore, spec: WorkflowSpec) -> dict[str, Any]:
    document = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    problems = []
    for index, step in enumerate(document["steps"]):
        for name in ("title", "text", "subject", "question", "key"):
            if isinstance(step.get(name), str) and (problem := check(step[name])):
                problems.append(f"steps[{index}].{name}: {problem}")
    missing = spec.channels() - store.channel_names()
    if missing:
        problems.append(f"unknown channel(s): {', '.join(sorted(missing))}")
    if problems:
        raise RecordInvalid("; ".join(problems))
    return document


@router.get("", summary="Every workflow at its current version")
def list_workflows(engine: EngineDep, settings: SettingsDep) -> list[WorkflowPublic]:
    return [WorkflowPublic.model_validate(w) for w in _store(engine, settings).list_workflows()]


@router.get("/{workflow_id}", summary="One workflow")
def get_workflow(engine: EngineDep, settings: SettingsDep, workflow_id: int) -> WorkflowPublic:
    return WorkflowPublic.model_validate(_store(engine, settings).get_workflow(workflow_id))


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a workflow (version 1)")
def create_workflow(
    engine: EngineDep, settings: SettingsDep, principal: PrincipalDep, body: WorkflowRequest
) -> WorkflowPublic:
    store = _store(engine, settings)
    row = store.create_workflow(
        name=body.name,
        trigger_kind=body.trigger_kind,
        enabled=body.enabled,
        spec=_checked(store, body.spec),
        actor=principal.actor,
    )
    return WorkflowPublic.model_validate(row)


@router.put("/{workflow_id}", summary="Save a new version")
def update_workflow(
    engine: EngineDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    workflow_id: int,
    body: WorkflowRequest,
) -> WorkflowPublic:
    store = _store(engine, settings)
    row = store.new_version(
        workflow_id,
        _checked(store, body.spec),
        principal.actor,
        name=body.name,
        trigger_kind=body.trigger_kind,
        enabled=body.enabled,
    )
    return WorkflowPublic.model_validate(row)


@router.get("/{workflow_id}/versions", summary="Every version, newest first")
def versions(engine: EngineDep, settings: SettingsDep, workflow_id: int) -> list[dict[str, Any]]:
    return _store(engine, settings).versions(workflow_id)


@router.post("/{workflow_id}/enable", summary="Start runs for new triggers")
def enable(engine: EngineDep, settings: SettingsDep, workflow_id: int) -> WorkflowPublic:
    return WorkflowPublic.model_validate(_store(engine, settings).set_enabled(workflow_id, True))


@router.post("/{workflow_id}/disable", summary="Start no more runs (running ones finish)")
def disable(engine: EngineDep, settings: SettingsDep, workflow_id: int) -> WorkflowPublic:
    return WorkflowPublic.model_validate(_store(engine, settings).set_enabled(workflow_id, False))


@router.post("/{workflow_id}/dry-run", summary="What a sample trigger would do; nothing is sent")
def dry_run_workflow(
    engine: EngineDep, settings: SettingsDep, workflow_id: int, body: SampleRequest
) -> dict[str, Any]:
    store = _store(engine, settings)
    row = store.get_workflow(workflow_id)
    kinds = {c["name"]: c["kind"] for c in store.list_channels()}
    try:
        return dry_run(
            WorkflowSpec.model_validate(row["spec"]), _sample(body.trigger), kinds, body.context
        )
    except TemplateFailed as exc:
        raise RecordInvalid(str(exc)) from exc


@router.post("/preview", summary="A template rendered with a sample trigger (read only)")
def preview(body: PreviewRequest) -> dict[str, Any]:
    trigger = _sample(body.trigger)
    values = trigger.model_dump(mode="json")
    try:
        message = Message(title=render(body.title, values), text=render(body.text, values))
    except TemplateFailed as exc:
        raise RecordInvalid(str(exc)) from exc
    return {
        "title": message.title,
        "text": message.text,
        **preview_message(message, body.channel_kind),
    }


@runs_router.get("", summary="Workflow runs, newest first")
def list_runs(
    engine: EngineDep,
    state: str | None = Query(default=None, pattern=r"^(running|waiting|done|failed)$"),
    workflow_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    rows, total = queries.list_runs(
        engine, state=state, workflow_id=workflow_id, limit=limit, offset=offset
    )
    following = offset + len(rows)
    return {"items": rows, "total": total, "next_offset": following if following < total else None}


@runs_router.get("/{run_id}", summary="A run: steps done, messages with receipts, its wait")
def get_run(engine: EngineDep, run_id: str) -> dict[str, Any]:
    found = queries.run_detail(engine, run_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r}")
    return found
