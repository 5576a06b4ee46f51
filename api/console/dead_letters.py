"""``/dead-letters`` and ``/dead-letters/{id}``: every service's dead letters, their cause, Replay.

The list and the detail are the JSON routes' own functions
(:func:`api.routes.dead_letters.list_dead_letters`, :func:`~api.routes.dead_letters.
get_dead_letter`) called with the page's filters; Replay and Discard are buttons that call
``POST /api/v1/dead-letters/replay`` / ``.../discard`` with the user's session. The detail
adds the trace's attempts (runs, finance attempts) and, for a mapping failure, the rule that
failed with a link to the mapping editor loaded with this dead letter's payload. This page is
the link target of the ``dead_letter`` notification.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, cast, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.console.render import PagesDep, UserDep, as_text, parse_moment
from api.deps import EngineDep
from api.routes.dead_letters import ReplayDep, Status, get_dead_letter, list_dead_letters
from sinks.views.lineage import trace
from topics.registry import PIPELINE_INPUTS

router = APIRouter(include_in_schema=False)

PAGE = 50


def _text(encoded: str | None) -> str | None:
    return as_text(base64.b64decode(encoded)) if encoded is not None else None


def _blank(value: str | None) -> str | None:
    return value or None


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letter_list(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    replay: ReplayDep,
    pipeline: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = "dead",
    error_class: str | None = None,
    key: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    filters: dict[str, Any] = {
        "pipeline": _blank(pipeline),
        "error_class": _blank(error_class),
        "key": _blank(key),
        "since": parse_moment(since),
        "until": parse_moment(until),
    }
    state = cast(Status, status_) if status_ in get_args(Status) else None
    found = await run_in_threadpool(
        list_dead_letters, replay, status_=state, limit=PAGE, before_id=before_id, **filters
    )
    criteria = {name: value for name, value in filters.items() if value is not None}
    body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in criteria.items()}
    return pages.render(
        request,
        "dead_letters/list.html",
        user,
        items=found.items,
        older=_older(request, found.next_before_id),
        pipelines=sorted(PIPELINE_INPUTS),
        form={**{k: request.query_params.get(k, "") for k in filters}, "status": status_ or ""},
        bulk_body=body,
    )


def _older(request: Request, before_id: int | None) -> str | None:
    if before_id is None:
        return None
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("before_id", "part")]
    return f"{request.url.path}?{urlencode([*kept, ('before_id', str(before_id))])}"


@router.get("/dead-letters/{dead_letter_id}", response_class=HTMLResponse)
async def dead_letter_page(
    request: Request,
    user: UserDep,
    pages: PagesDep,
    replay: ReplayDep,
    engine: EngineDep,
    dead_letter_id: Annotated[int, Path(ge=1)],
) -> HTMLResponse:
    letter = await run_in_threadpool(get_dead_letter, replay, dead_letter_id)
    history = await run_in_threadpool(trace, engine, letter.trace_id) if letter.trace_id else None
    failed_runs = [run for run in (history.runs if history else []) if run["failed_rule"]]
    return pages.render(
        request,
        "dead_letters/detail.html",
        user,
        letter=letter,
        key_text=_text(letter.key_base64),
        history=history,
        failed_runs=failed_runs,
    )
