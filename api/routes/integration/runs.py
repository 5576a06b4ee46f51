"""``/api/v1/runs``: every delivery attempt of a flow, and re-runs.

Reads come from PostgreSQL. A re-run is a command on ``integration.commands`` (the
:class:`~streams.integration.commands.RerunCommand` the delivery pipeline consumes, keyed by
the flow id); the API answers 202 once the broker has it (``acks=all``) and never delivers
anything itself. ``mapping``: ``"latest"`` runs the mapping's newest version, ``"pinned"`` the
version the run used. A bulk re-run takes the latest attempt of each (flow, source event)
matching the filter; ``dry_run`` only counts.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from api.deps import EngineDep, ProducerDep
from api.publish import Command, publish_command
from sinks.integration.run_queries import (
    MAX_PAGE,
    MAX_RERUN,
    RunFilter,
    get_run,
    list_runs,
    runs_to_rerun,
)
from streams.integration.commands import MappingChoice, RerunCommand
from synapseops.ids import new_id, new_traceparent
from synapseops.kafka import AsyncProducer
from topics.registry import INTEGRATION_COMMANDS, INTEGRATION_RERUN

router = APIRouter(prefix="/runs", tags=["integration: runs"])

# Every status of sinks.integration.tables.RUN_STATUSES (a unit test keeps them equal): a
# status missing here turns every list holding such a run into a 500.
RunStatus = Literal["running", "succeeded", "failed", "dead", "duplicate"]
Id = Annotated[int, Path(ge=1)]
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
PUBLISH_BATCH = 200


class RunSummary(BaseModel):
    id: int
    flow_id: int
    source_event_id: str
    attempt: int
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    mapping_version: int | None
    response_status: int | None
    error: str | None
    error_class: str | None
    failed_rule: str | None
    rerun_of: int | None
    trace_id: str | None


class RunPublic(RunSummary):
    """One run with its request (credentials shown as ``**hidden**``) and response; bodies
    above the row cap come from storage apart as ``request_body``/``response_body``."""

    request: Any
    response: Any
    request_body: str | None
    request_body_bytes: int | None
    response_body: str | None
    response_body_bytes: int | None


class RunsPublic(BaseModel):
    """Newest first. Pass ``next_before_id`` as ``before_id`` for the next (older) page."""

    items: list[RunSummary]
    next_before_id: int | None


class RerunOne(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mapping: MappingChoice = "latest"


class RerunMany(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow_id: int | None = Field(default=None, ge=1)
    status: RunStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    mapping: MappingChoice = "latest"
    dry_run: bool = False
    limit: int = Field(default=MAX_RERUN, ge=1, le=MAX_RERUN)

    @model_validator(mode="after")
    def _a_filter(self) -> RerunMany:
        if self.flow_id is None and self.status is None and not (self.since or self.until):
            raise ValueError("give at least one of flow_id, status, since, until")
        if self.since and self.until and self.since > self.until:
            raise ValueError("since must not be after until")
        return self


class RerunAccepted(BaseModel):
    rerun_id: str
    matched: int
    published: int
    dry_run: bool
    run_ids: list[int]


def _traceparent(trace_id: str | None) -> str:
    # Continue the run's own trace, so the re-run's effects are found under the same id.
    if trace_id and _TRACE_ID.match(trace_id):
        return f"00-{trace_id}-{os.urandom(8).hex()}-01"
    return new_traceparent()


async def _publish(
    producer: AsyncProducer, runs: list[dict[str, Any]], mapping: MappingChoice, rerun_id: str
) -> int:
    async def one(run: dict[str, Any]) -> None:
        command = RerunCommand(run_id=run["id"], mapping=mapping, rerun_id=rerun_id)
        await publish_command(
            producer,
            Command(
                topic=INTEGRATION_COMMANDS.name,
                kind=INTEGRATION_RERUN,
                name="run.rerun",
                key=command.key(run["flow_id"]),
                value=command.encode(),
                traceparent=_traceparent(run.get("trace_id")),
            ),
            {"run_id": run["id"], "flow_id": run["flow_id"], "rerun_id": rerun_id},
        )

    for start in range(0, len(runs), PUBLISH_BATCH):
        # produce() is called in list order, so one flow's commands keep their order.
        await asyncio.gather(*(one(run) for run in runs[start : start + PUBLISH_BATCH]))
    return len(runs)


@router.get("", summary="Runs, newest first, by flow / status / time range")
def list_flow_runs(
    engine: EngineDep,
    flow_id: Annotated[int | None, Query(ge=1)] = None,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> RunsPublic:
    criteria = RunFilter(flow_id=flow_id, status=status_, since=since, until=until)
    rows = list_runs(engine, criteria, limit=limit, before_id=before_id)
    items = [RunSummary.model_validate(row) for row in rows]
    return RunsPublic(items=items, next_before_id=items[-1].id if len(items) == limit else None)


@router.post(
    "/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    responses={422: {"description": "no filter, or an invalid one"}},
)
async def rerun_many(body: RerunMany, engine: EngineDep, producer: ProducerDep) -> RerunAccepted:
    criteria = RunFilter(
        flow_id=body.flow_id, status=body.status, since=body.since, until=body.until
    )
    runs = await run_in_threadpool(runs_to_rerun, engine, criteria, limit=body.limit)
    rerun_id = new_id("rr")
    published = 0 if body.dry_run else await _publish(producer, runs, body.mapping, rerun_id)
    return RerunAccepted(
        rerun_id=rerun_id,
        matched=len(runs),
        published=published,
        dry_run=body.dry_run,
        run_ids=[run["id"] for run in runs],
    )


@router.get("/{run_id}", responses={404: {"description": "no such run"}})
def get_one_run(run_id: Id, engine: EngineDep) -> RunPublic:
    return RunPublic.model_validate(get_run(engine, run_id))


@router.post(
    "/{run_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "no such run"}},
)
async def rerun_one(
    run_id: Id, request: Request, engine: EngineDep, producer: ProducerDep
) -> RerunAccepted:
    """Re-run one run's source event through its flow (body optional: ``{"mapping"}``)."""
    raw = await request.body()
    try:
        body = RerunOne.model_validate_json(raw) if raw.strip() else RerunOne()
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    run = await run_in_threadpool(get_run, engine, run_id)
    rerun_id = new_id("rr")
    published = await _publish(producer, [run], body.mapping, rerun_id)
    return RerunAccepted(
        rerun_id=rerun_id, matched=1, published=published, dry_run=False, run_ids=[run_id]
    )
