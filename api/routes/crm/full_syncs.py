"""``/api/v1/crm/.../full-syncs``: a manual full sync of a mapping, its dry run and progress.

``POST /crm/mappings/{id}/full-syncs {dry_run}`` queues one (202); a worker runs it
(:mod:`streams.crm.full_sync`): ``planned`` says what it would create / update / hold / skip,
with ``samples``; a run then hands the drifted pairs to the pipeline and ``done`` / ``total``
moves as they are handled. ``GET /crm/full-syncs/{id}`` adds the rate (records/s since it
started) and the ETA; ``POST /crm/full-syncs/{id}/cancel`` stops it between two steps. Safe
while the incremental sync runs: both go through the same keyed pipeline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from api.bodies import body_schema, exact_body
from api.deps import EngineDep, PrincipalDep
from sinks.crm import full_syncs, store

router = APIRouter(prefix="/crm", tags=["crm: full syncs"])
Id = Annotated[int, Path(ge=1)]


class FullSyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = True


class FullSyncPublic(BaseModel):
    id: int
    mapping_id: int
    dry_run: bool
    status: str
    requested_by: str
    cancel_requested: bool
    total: int
    done: int
    planned: dict[str, int]
    samples: dict[str, list[dict[str, Any]]]
    outcomes: dict[str, int]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rate_per_s: float | None = None
    eta_s: float | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> FullSyncPublic:
        public = cls.model_validate(row)
        if public.started_at is not None and public.total:
            end = public.finished_at or datetime.now(UTC)
            elapsed = max((end - public.started_at).total_seconds(), 1e-3)
            public.rate_per_s = round(public.done / elapsed, 2)
            left = max(public.total - public.done, 0)
            public.eta_s = round(left / public.rate_per_s, 1) if public.rate_per_s else None
        return public


@router.post(
    "/mappings/{mapping_id}/full-syncs",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=body_schema(FullSyncRequest),
    responses={404: {"description": "no such mapping"}},
)
async def start(
    mapping_id: Id, request: Request, engine: EngineDep, principal: PrincipalDep
) -> FullSyncPublic:
    body = await exact_body(request, FullSyncRequest)
    await run_in_threadpool(store.get_mapping, engine, mapping_id)
    row = await run_in_threadpool(
        full_syncs.request, engine, mapping_id, body.dry_run, principal.actor
    )
    return FullSyncPublic.of(row)


@router.get("/mappings/{mapping_id}/full-syncs")
def list_full_syncs(mapping_id: Id, engine: EngineDep) -> list[FullSyncPublic]:
    return [FullSyncPublic.of(r) for r in full_syncs.listing(engine, mapping_id)]


@router.get("/full-syncs/{sync_id}", responses={404: {"description": "no such full sync"}})
def progress(sync_id: Id, engine: EngineDep) -> FullSyncPublic:
    return FullSyncPublic.of(full_syncs.get(engine, sync_id))


@router.post(
    "/full-syncs/{sync_id}/cancel",
    responses={404: {"description": "no such full sync"}, 409: {"description": "finished"}},
)
def cancel(sync_id: Id, engine: EngineDep) -> FullSyncPublic:
    return FullSyncPublic.of(full_syncs.cancel(engine, sync_id))
