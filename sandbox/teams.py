"""Microsoft Teams webhooks (``/teams/...``): the Workflows webhook and the legacy connector.

Both take ``{type: "message", attachments: [{contentType:
"application/vnd.microsoft.card.adaptive", content: {type: "AdaptiveCard", version, body}}]}``:

* Workflows (Power Automate "When a Teams webhook request is received"):
  ``POST /teams/workflows/{id}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=…&sv=1.0
  &sig=…`` → 202 Accepted, empty body. Without ``sig`` → 401 ``DirectApiAuthorizationRequired``;
  another shape or a card version above 1.5 → 400 ``TriggerInputSchemaMismatch``; a body of 28
  KB or more → 413.
* Legacy Office 365 connector ``POST /teams/webhook/{id}`` → 200 ``1``; another shape or card
  version → 400; 28 KB or more → **200** with "Microsoft Teams endpoint returned HTTP error
  413 …" as the text, the way the connector answered (a client must read the body).

Either way more than 4 requests in a second to one webhook → 429 with ``Retry-After``
(:mod:`sandbox.limits`). ``GET /_sandbox/teams/messages?webhook=<id>`` lists the cards each
webhook accepted, oldest first.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from sandbox.gate import mark_refused
from sandbox.recorder import now_iso

teams_router = APIRouter(prefix="/teams", tags=["teams"])
control_router = APIRouter(prefix="/_sandbox/teams", tags=["sandbox"])
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MAX_CARD_VERSION = (1, 5)
MAX_BYTES = 28 * 1024


class TeamsChannels:
    """The cards each webhook accepted (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []

    def keep(self, webhook: str, kind: str, body: dict[str, Any], size: int) -> None:
        cards = [a.get("content") for a in body.get("attachments", [])]
        entry = {
            "webhook": webhook,
            "kind": kind,
            "cards": copy.deepcopy(cards),
            "card_versions": [str(c.get("version")) for c in cards if isinstance(c, dict)],
            "size": size,
            "received_at": now_iso(),
        }
        with self._lock:
            self._messages.append(entry)

    def messages(self, webhook: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages if webhook in (None, m["webhook"])]

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()


def _version(text: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return None


def teams_problem(body: Any) -> str | None:
    """Why Teams would refuse this message, or None when it is an Adaptive Card message."""
    if not isinstance(body, dict) or body.get("type") != "message":
        return 'the body must be {"type": "message", "attachments": [...]}'
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "attachments must be a non-empty list"
    for index, attachment in enumerate(attachments):
        if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE_CARD:
            return f"attachments[{index}].contentType must be {ADAPTIVE_CARD}"
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return f'attachments[{index}].content must be {{"type": "AdaptiveCard", ...}}'
        version = _version(card.get("version"))
        if version is None or version > MAX_CARD_VERSION:
            return f"attachments[{index}].content.version must be at most 1.5"
        if "body" in card and not isinstance(card["body"], list):
            return f"attachments[{index}].content.body must be a list"
    return None


def _channels(request: Request) -> TeamsChannels:
    channels: TeamsChannels = request.app.state.sandbox.teams
    return channels


def _throttled(request: Request, webhook: str) -> Response | None:
    limits = request.app.state.sandbox.limits
    settings = limits.settings.teams
    if not settings.enabled:
        return None
    verdict = limits.rolling(f"teams:{webhook}", settings.per_webhook_per_s, 1.0)
    if verdict.allowed:
        return None
    mark_refused(request)
    message = "Microsoft Teams endpoint returned HTTP error 429: too many requests"
    return PlainTextResponse(
        message, status_code=429, headers={"Retry-After": verdict.retry_after_header}
    )


async def _parsed(request: Request) -> tuple[bytes, Any]:
    raw = await request.body()
    try:
        return raw, json.loads(raw) if raw else None
    except ValueError:
        return raw, None


def _flow_error(request: Request, status: int, code: str, message: str) -> Response:
    mark_refused(request)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@teams_router.post("/workflows/{workflow_id}/triggers/manual/paths/invoke")
async def workflow(workflow_id: str, request: Request) -> Response:
    if not request.query_params.get("sig"):
        message = "The request must be authenticated only by Shared Access scheme."
        return _flow_error(request, 401, "DirectApiAuthorizationRequired", message)
    if (throttled := _throttled(request, workflow_id)) is not None:
        return throttled
    raw, body = await _parsed(request)
    if len(raw) >= MAX_BYTES:
        message = f"The request content size {len(raw)} exceeds the 28 KB message limit."
        return _flow_error(request, 413, "MessageTooLarge", message)
    if problem := teams_problem(body):
        return _flow_error(request, 400, "TriggerInputSchemaMismatch", problem)
    _channels(request).keep(workflow_id, "workflow", body, len(raw))
    return Response(status_code=202)


@teams_router.post("/webhook/{webhook_id}")
async def connector(webhook_id: str, request: Request) -> Response:
    if (throttled := _throttled(request, webhook_id)) is not None:
        return throttled
    raw, body = await _parsed(request)
    if len(raw) >= MAX_BYTES:
        mark_refused(request)
        text = (
            "Microsoft Teams endpoint returned HTTP error 413 with ContextId "
            "tcid=0,server=msgapi-sandbox,cv=sandbox.0"
        )
        return PlainTextResponse(text)
    if problem := teams_problem(body):
        mark_refused(request)
        return JSONResponse({"error": "bad_payload", "message": problem}, status_code=400)
    _channels(request).keep(webhook_id, "connector", body, len(raw))
    return PlainTextResponse("1")


@control_router.get("/messages")
async def messages(request: Request, webhook: str | None = None) -> JSONResponse:
    return JSONResponse(_channels(request).messages(webhook))
