"""``/api/v1/events``: the inbound events the worker stored (read from PostgreSQL).

The routes are plain ``def``: FastAPI runs them in its threadpool, so the blocking psycopg2
query (:mod:`sinks.event_log.queries`) never stalls the event loop that serves the ingress.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from api.deps import EngineDep
from api.ingress import SOURCE_PATTERN
from sinks.event_log import queries

router = APIRouter(prefix="/events", tags=["events"])

MAX_PAGE = 500


class EventPublic(BaseModel):
    id: int
    event_id: str
    source: str
    entity_key: str
    event_type: str | None
    trace_id: str | None
    traceparent: str | None
    topic: str
    partition: int
    offset: int
    payload: Any
    headers: Any
    received_at: datetime
    stored_at: datetime


class EventsPublic(BaseModel):
    """Newest first. Pass ``next_before_id`` as ``before_id`` for the next (older) page."""

    items: list[EventPublic]
    next_before_id: int | None


@router.get("", summary="Stored inbound events, newest first")
def list_events(
    engine: EngineDep,
    source: Annotated[str | None, Query(pattern=SOURCE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> EventsPublic:
    rows = queries.list_events(engine, source=source, limit=limit, before_id=before_id)
    items = [EventPublic.model_validate(row) for row in rows]
    next_before_id = items[-1].id if len(items) == limit else None
    return EventsPublic(items=items, next_before_id=next_before_id)


@router.get(
    "/{event_row_id}",
    summary="One stored inbound event by its row id",
    responses={404: {"description": "no such row"}},
)
def get_event(engine: EngineDep, event_row_id: Annotated[int, Path(ge=1)]) -> EventPublic:
    row = queries.get_event(engine, event_row_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inbound event with id {event_row_id}")
    return EventPublic.model_validate(row)
