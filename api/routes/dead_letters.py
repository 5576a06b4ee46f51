"""``/api/v1/dead-letters``: list, inspect, replay and discard dead letters.

Reads come from PostgreSQL (the ``dead_letters`` table the dead-letter store fills); a replay
produces each record back into its pipeline through :mod:`sinks.dead_letters.replay`, the same code
the ``synapseops replay`` command runs. The read routes are plain ``def`` (FastAPI's threadpool
keeps psycopg2 off the event loop); the replay is ``async`` because it awaits each delivery.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from api.deps import EngineDep, ProducerDep, SettingsDep
from sinks.dead_letters.replay import (
    DEFAULT_RATE_PER_S,
    DeadLetterFilter,
    DeadLetterReplay,
    pipelines_for,
)
from sinks.dead_letters.tables import DEAD
from topics.registry import PipelineSpec

router = APIRouter(prefix="/dead-letters", tags=["dead-letters"])

MAX_PAGE = 500
MAX_RATE_PER_S = 10_000.0
# The values of sinks.dead_letters.tables.STATUSES (a Literal cannot be built from a tuple).
Status = Literal["dead", "replayed", "discarded"]


def get_pipelines(request: Request, settings: SettingsDep) -> Mapping[str, PipelineSpec]:
    """The pipelines a replay may send into; ``app.state.pipelines`` overrides (tests)."""
    override: Mapping[str, PipelineSpec] | None = getattr(request.app.state, "pipelines", None)
    return override if override is not None else pipelines_for(settings.retry.delays)


def get_replay(
    engine: EngineDep,
    settings: SettingsDep,
    pipelines: Annotated[Mapping[str, PipelineSpec], Depends(get_pipelines)],
) -> DeadLetterReplay:
    return DeadLetterReplay(engine, pipelines, settings.replay)


ReplayDep = Annotated[DeadLetterReplay, Depends(get_replay)]


class DeadLetterSummary(BaseModel):
    id: int
    pipeline: str
    status: str
    error_kind: str | None
    error_class: str | None
    error_message: str | None
    attempts: int
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    trace_id: str | None
    first_failed_at: datetime | None
    dead_at: datetime
    replay_id: str | None
    replay_count: int
    updated_at: datetime
    # Set when the row is minimal (its history could not be read into the columns), some
    # road headers were not believed, or its trigger could not be published: why.
    store_error: str | None = None


class DeadLetterPublic(DeadLetterSummary):
    """One dead letter in full. Key and value are the exact bytes, base64; ``value_text`` is
    the value as UTF-8 when it is text (for people), else null."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    original_timestamp: datetime | None
    key_base64: str | None
    value_base64: str | None
    value_text: str | None
    headers: dict[str, Any]
    error_trace: str | None
    trigger_published_at: datetime | None


class DeadLettersPublic(BaseModel):
    """Newest first. Pass ``next_before_id`` as ``before_id`` for the next (older) page."""

    items: list[DeadLetterSummary]
    next_before_id: int | None


class ReplayRequest(DeadLetterFilter):
    dry_run: bool = False
    rate_per_s: float = Field(default=DEFAULT_RATE_PER_S, gt=0, le=MAX_RATE_PER_S)


class ReplayResponse(BaseModel):
    replay_id: str
    matched: int
    replayed: int


class DiscardResponse(BaseModel):
    discarded: int
    ids: list[int]


def _public(row: Mapping[str, Any]) -> DeadLetterPublic:
    value: bytes | None = row["value"]
    try:
        value_text = value.decode("utf-8") if value is not None else None
    except UnicodeDecodeError:
        value_text = None
    return DeadLetterPublic.model_validate(
        {
            **row,
            "key_base64": _b64(row["key"]),
            "value_base64": _b64(value),
            "value_text": value_text,
        }
    )


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data is not None else None


@router.get("", summary="Dead letters, newest first")
def list_dead_letters(
    replay: ReplayDep,
    pipeline: str | None = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    error_class: str | None = None,
    key: Annotated[str | None, Query(max_length=1000)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> DeadLettersPublic:
    criteria = _filter(
        pipeline=pipeline, error_class=error_class, key=key, since=since, until=until
    )
    rows = replay.select(criteria, status=status_, limit=limit, before_id=before_id)
    items = [DeadLetterSummary.model_validate(row) for row in rows]
    next_before_id = items[-1].id if len(items) == limit else None
    return DeadLettersPublic(items=items, next_before_id=next_before_id)


@router.post(
    "/replay",
    summary="Send matching dead letters back into their pipelines",
    responses={
        409: {
            "description": "a replay with this Idempotency-Key is still running (Retry-After: "
            "when its lease goes stale, if its process died)"
        },
        422: {
            "description": "no criterion given, an invalid one, or an Idempotency-Key first "
            "used with another filter"
        },
    },
)
async def replay_dead_letters(
    body: ReplayRequest,
    replay: ReplayDep,
    producer: ProducerDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ReplayResponse:
    """Only ``dead`` rows are sent. The same ``Idempotency-Key`` with the same filter answers
    as the first time and sends nothing (a replay whose process died is taken over once its
    lease is stale); with another filter it is refused. ``dry_run`` counts what would be
    sent."""
    criteria = DeadLetterFilter.model_validate(body.model_dump(include=_FILTER_FIELDS))
    # EmptyFilter / ReplayKeyReused (422), ReplayInProgress (409, Retry-After) and
    # ReplayLeaseLost (409) are RecordErrors: api/main.py answers them.
    result = await replay.replay(
        criteria,
        dry_run=body.dry_run,
        rate_per_s=body.rate_per_s,
        idempotency_key=idempotency_key,
        requested_by="api",
        producer=producer,
    )
    return ReplayResponse(**result.as_json())


@router.post(
    "/discard",
    summary="Discard every matching dead letter",
    responses={422: {"description": "no criterion given, or an invalid one"}},
)
def discard_dead_letters(body: DeadLetterFilter, replay: ReplayDep) -> DiscardResponse:
    ids = replay.discard(body)  # EmptyFilter: 422 (a RecordError)
    return DiscardResponse(discarded=len(ids), ids=ids)


@router.get(
    "/{dead_letter_id}",
    summary="One dead letter, with its bytes, headers and trace",
    responses={404: {"description": "no such dead letter"}},
)
def get_dead_letter(
    replay: ReplayDep, dead_letter_id: Annotated[int, Path(ge=1)]
) -> DeadLetterPublic:
    row = replay.get(dead_letter_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter with id {dead_letter_id}")
    return _public(row)


@router.post(
    "/{dead_letter_id}/discard",
    summary="Discard one dead letter",
    responses={
        404: {"description": "no such dead letter"},
        409: {"description": "it is not dead (already replayed or discarded)"},
    },
)
def discard_dead_letter(
    replay: ReplayDep, dead_letter_id: Annotated[int, Path(ge=1)]
) -> DiscardResponse:
    ids = replay.discard(DeadLetterFilter(ids=[dead_letter_id]))
    if not ids:
        row = replay.get(dead_letter_id)
        if row is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no dead letter with id {dead_letter_id}"
            )
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"dead letter {dead_letter_id} is {row['status']}, not {DEAD}",
        )
    return DiscardResponse(discarded=len(ids), ids=ids)


_FILTER_FIELDS = set(DeadLetterFilter.model_fields)


def _filter(**criteria: Any) -> DeadLetterFilter:
    try:
        return DeadLetterFilter(**criteria)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
