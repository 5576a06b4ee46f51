"""GitHub-shaped Events API: ``/github/repos/{owner}/{repo}/events``, ``/github/orgs/{org}/events``
and ``/github/events``, served the way GitHub asks pollers to use them.

* Newest first, ``per_page`` (default 30, at most 100) and ``page``, with a ``Link`` header
  (``next``, ``last``, ``prev``, ``first``). A timeline holds at most 300 events, from the past
  90 days; a page past the 300th event → 422 "pagination is limited for this resource".
* ``ETag`` (weak) on every page; ``If-None-Match`` with it → 304 and no body, and a 304 does
  not count against the rate limit. ``X-Poll-Interval`` (60 s unless ``/_sandbox/limits``
  says otherwise) says how often to poll.
* ``X-RateLimit-Limit/-Remaining/-Used/-Reset/-Resource`` on every answer: 5,000 an hour per
  token (``Authorization: Bearer …`` or ``token …``), 60 per IP without one; past it → 403
  (or 429, ``github.exceeded_status``) with GitHub's message. ``GET /github/rate_limit`` does
  not count.
* Unknown repository or organisation → 404 ``{"message": "Not Found", ...}``.

Controls: ``POST /_sandbox/github/events`` ``{repo, count?, types?, seed?, created_at?, org?,
event?}`` appends generated (or the given) events — see :mod:`sandbox.github_events`; ``GET
/_sandbox/github/events?repo=`` lists everything stored; ``PUT /_sandbox/github/repos``
``{repos: [{full_name, org?}]}`` creates repositories.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.gate import EXTRA_HEADERS_KEY, Refusal, add_response_headers
from sandbox.github_events import TYPES, GitHubEvents

router = APIRouter(prefix="/github", tags=["github"])
control_router = APIRouter(prefix="/_sandbox/github", tags=["sandbox"])
MAX_EVENTS = 300
WINDOW_DAYS = 90
DOCS = "https://docs.github.com/rest"


def _events(request: Request) -> GitHubEvents:
    events: GitHubEvents = request.app.state.sandbox.github
    return events


def _token(request: Request) -> str | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "token") and credential.strip():
        return credential.strip()
    return None


def metered(request: Request, count: bool = True, refuse: bool = True) -> None:
    """Count this request against its rate limit (raising GitHub's refusal when spent)."""
    limits = request.app.state.sandbox.limits
    settings = limits.settings.github
    if not settings.enabled:
        return
    token = _token(request)
    client = request.client.host if request.client else "unknown"
    if token:
        key = "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
        limit = settings.authenticated_per_window
    else:
        key, limit = f"ip:{client}", settings.unauthenticated_per_window
    verdict = limits.fixed(f"github:{key}", limit, settings.window_s, count=count)
    add_response_headers(
        request,
        {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(verdict.remaining),
            "X-RateLimit-Used": str(limit - verdict.remaining),
            "X-RateLimit-Reset": str(math.ceil(verdict.reset_at)),
            "X-RateLimit-Resource": "core",
        },
    )
    if not verdict.allowed and refuse:
        who = "user" if token else client
        message = f"API rate limit exceeded for {who}."
        if not token:
            message += (
                " (But here's the good news: Authenticated requests get a higher rate limit. "
                "Check out the documentation for more details.)"
            )
        status = settings.exceeded_status
        body = {
            "message": message,
            "documentation_url": f"{DOCS}/using-the-rest-api/rate-limits-for-the-rest-api",
            "status": str(status),
        }
        raise Refusal(JSONResponse(body, status_code=status))


def _not_found() -> Refusal:
    body = {"message": "Not Found", "documentation_url": f"{DOCS}/activity/events", "status": "404"}
    return Refusal(JSONResponse(body, status_code=404))


def _paging(request: Request) -> tuple[int, int]:
    def number(name: str, default: int) -> int:
        try:
            return max(1, int(request.query_params.get(name, default)))
        except ValueError:
            return default

    return min(number("per_page", 30), 100), number("page", 1)


def _link(request: Request, per_page: int, page: int, last: int) -> str:
    base = str(request.url.replace(query=""))

    def url(number: int) -> str:
        return f"{base}?{urlencode({'per_page': per_page, 'page': number})}"

    links = []
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(page - 1)}>; rel="prev"', f'<{url(1)}>; rel="first"']
    return ", ".join(links)


def _fresh(request: Request, etag: str) -> bool:
    sent = request.headers.get("if-none-match", "")
    tags = {t.strip().removeprefix("W/") for t in sent.split(",") if t.strip()}
    return "*" in tags or etag.removeprefix("W/") in tags


def _timeline(request: Request, repo: str | None, org: str | None) -> Response:
    per_page, page = _paging(request)
    poll = str(request.app.state.sandbox.limits.settings.github.poll_interval_s)
    if (page - 1) * per_page >= MAX_EVENTS:
        metered(request)
        message = (
            "In order to keep the API fast for everyone, pagination is limited for this "
            "resource. Check the rel=last link relation in the Link response header to see "
            "how far back you can traverse."
        )
        refusal = {
            "message": message,
            "documentation_url": f"{DOCS}/using-the-rest-api/using-pagination-in-the-rest-api",
            "status": "422",
        }
        return JSONResponse(refusal, status_code=422)
    events = _events(request).timeline(repo, org, WINDOW_DAYS, MAX_EVENTS)
    chunk = events[(page - 1) * per_page : page * per_page]
    body = json.dumps(chunk, separators=(",", ":")).encode()
    etag = f'W/"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
    headers = {
        "ETag": etag,
        "X-Poll-Interval": poll,
        "Cache-Control": "private, max-age=60, s-maxage=60",
    }
    if _fresh(request, etag):
        metered(request, count=False)
        return Response(status_code=304, headers=headers)
    metered(request)
    last = max(1, math.ceil(len(events) / per_page))
    if link := _link(request, per_page, page, last):
        headers["Link"] = link
    return Response(body, headers=headers, media_type="application/json; charset=utf-8")


@router.get("/repos/{owner}/{name}/events")
async def repo_events(owner: str, name: str, request: Request) -> Response:
    if not _events(request).known(f"{owner}/{name}"):
        metered(request)
        raise _not_found()
    return _timeline(request, f"{owner}/{name}", None)


@router.get("/orgs/{org}/events")
async def org_events(org: str, request: Request) -> Response:
    if not _events(request).org_known(org):
        metered(request)
        raise _not_found()
    return _timeline(request, None, org)


@router.get("/events")
async def public_events(request: Request) -> Response:
    return _timeline(request, None, None)


@router.get("/rate_limit")
async def rate_limit(request: Request) -> Response:
    metered(request, count=False, refuse=False)  # it answers even when the quota is spent
    headers = request.scope.get(EXTRA_HEADERS_KEY, {})
    core = {
        "limit": int(headers.get("X-RateLimit-Limit", 0)),
        "remaining": int(headers.get("X-RateLimit-Remaining", 0)),
        "used": int(headers.get("X-RateLimit-Used", 0)),
        "reset": int(headers.get("X-RateLimit-Reset", 0)),
    }
    return JSONResponse({"resources": {"core": core}, "rate": core})


class NewEvents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    count: int = Field(default=1, ge=1, le=10_000)
    types: list[str] = Field(default_factory=lambda: list(TYPES))
    seed: int | None = None
    created_at: datetime | None = None
    org: bool = False
    event: dict[str, Any] | None = None


class RepoSpec(BaseModel):
    full_name: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    org: bool = False


class Repos(BaseModel):
    repos: list[RepoSpec]


@control_router.post("/events", status_code=201)
async def append(body: NewEvents, request: Request) -> dict[str, Any]:
    unknown = sorted(set(body.types) - set(TYPES))
    if unknown or not body.types:
        raise HTTPException(422, f"types must be among {list(TYPES)}; unknown: {unknown}")
    events = _events(request)
    events.ensure_repo(body.repo, body.org)
    if body.event is not None:
        return {"events": [events.add(body.event, body.repo)]}
    made = events.generate(
        body.repo, body.count, body.types, random.Random(body.seed), body.created_at
    )
    return {"events": made}


@control_router.get("/events")
async def stored(request: Request, repo: str | None = None) -> dict[str, Any]:
    found = _events(request).timeline(repo, None, 36_500, 10**9)
    return {"events": found, "count": len(found)}


@control_router.put("/repos")
async def repos(body: Repos, request: Request) -> dict[str, Any]:
    events = _events(request)
    made = [events.ensure_repo(r.full_name, r.org).ref() for r in body.repos]
    return {"repos": made}
