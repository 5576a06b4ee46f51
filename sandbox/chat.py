"""Slack-shaped Web API and incoming webhooks (``/slack/...``).

Web API (token as ``Authorization: Bearer xox…`` or a ``token`` field; JSON or form bodies):

* ``chat.postMessage`` ``{channel (id, name or #name), text, blocks, attachments, thread_ts,
  metadata}`` → HTTP 200 ``{ok: true, channel, ts, message}``, or ``{ok: false, error}``:
  ``not_authed`` (no token), ``invalid_auth`` (not a ``xoxb-``/``xoxp-``/``xoxa-``/``xoxe``
  token), ``token_revoked``, ``channel_not_found``, ``is_archived``, ``no_text``,
  ``msg_too_long`` (text over 40,000), ``too_many_attachments`` (over 100),
  ``invalid_blocks_format`` (not a list), ``invalid_blocks`` (over 50 blocks, an unknown block
  type, a section without text/fields, text over 3,000; with ``errors`` and
  ``response_metadata.messages`` naming the JSON pointer, as Slack does). Past the rate limit
  (1 message per second per channel with a short burst, :mod:`sandbox.limits`) → HTTP 429,
  ``Retry-After``, ``{ok: false, error: "ratelimited"}``.
* ``conversations.list`` (``limit``, ``cursor``, ``exclude_archived``), ``conversations.history``
  (``channel``, ``limit``, ``include_all_metadata``: newest first) and ``auth.test``.

Incoming webhooks ``POST /slack/services/T…/B…/<secret>`` (JSON, or a form with ``payload``):
``ok`` (200, text), or ``invalid_payload`` / ``no_text`` / ``invalid_blocks`` /
``too_many_attachments`` (400), ``no_service`` (404, unknown URL), ``channel_is_archived``
(410), ``rate_limited`` (429, ``Retry-After``). One webhook per default channel exists
(``GET /_sandbox/slack/webhooks``); ``POST`` ``{channel}`` there makes another.

Refusals are not in ``/_sandbox/slack/received``. ``GET /_sandbox/slack/messages?channel=``
lists what each channel shows, oldest first. Channels: :data:`DEFAULT_CHANNELS` plus ``PUT
/_sandbox/slack/channels {channels, archived?}``; ``PUT /_sandbox/slack/tokens {revoked}``.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from sandbox.gate import mark_refused
from sandbox.payloads import BadPayload, read_json
from sandbox.slack_workspace import DEFAULT_CHANNELS, SlackWorkspace, blocks_problem

slack_router = APIRouter(prefix="/slack", tags=["slack"])
control_router = APIRouter(prefix="/_sandbox/slack", tags=["sandbox"])
_MAX_TEXT = 40_000
_MAX_ATTACHMENTS = 100
_TOKEN_PREFIXES = ("xoxb-", "xoxp-", "xoxa-", "xoxe")

__all__ = ["DEFAULT_CHANNELS", "SlackWorkspace", "blocks_problem", "control_router", "slack_router"]


def _workspace(request: Request) -> SlackWorkspace:
    workspace: SlackWorkspace = request.app.state.sandbox.slack
    return workspace


async def _slack_args(request: Request) -> dict[str, Any]:
    """Web API methods take JSON or a form whose ``blocks``/``attachments`` are JSON text."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadPayload("body must be a JSON object")
        return body
    args: dict[str, Any] = dict(parse_qsl((await request.body()).decode()))
    args.update(dict(request.query_params))
    for name in ("blocks", "attachments", "metadata"):
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError:
                args[name] = {"unparsable": args[name]} if name != "blocks" else args[name]
    return args


def _fail(
    request: Request, error: str, status: int = 200, extra: dict[str, Any] | None = None
) -> JSONResponse:
    mark_refused(request)
    return JSONResponse({"ok": False, "error": error, **(extra or {})}, status_code=status)


def _auth_error(request: Request, args: dict[str, Any]) -> str | None:
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    token = bearer.strip() if scheme.lower() == "bearer" else ""
    token = token or str(args.get("token") or "")
    if not token:
        return "not_authed"
    if not token.startswith(_TOKEN_PREFIXES):
        return "invalid_auth"
    if _workspace(request).revoked(token):
        return "token_revoked"
    return None


def _limited(request: Request, channel: str) -> float | None:
    """Seconds to wait when this channel's rate limit is spent, else None."""
    limits = request.app.state.sandbox.limits
    settings = limits.settings.slack
    if not settings.enabled:
        return None
    verdict = limits.bucket(f"slack:{channel}", settings.per_channel_per_s, settings.burst)
    return None if verdict.allowed else verdict.retry_after_s


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, int(seconds + 0.999)))}


def _content_problem(body: dict[str, Any]) -> tuple[str, list[str]] | None:
    text, blocks, attachments = body.get("text"), body.get("blocks"), body.get("attachments")
    if not text and not blocks and not attachments:
        return "no_text", []
    if isinstance(attachments, list) and len(attachments) > _MAX_ATTACHMENTS:
        return "too_many_attachments", []
    if blocks is not None and not isinstance(blocks, list):
        return "invalid_blocks_format", []
    if problems := blocks_problem(blocks):
        return "invalid_blocks", problems
    if isinstance(text, str) and len(text) > _MAX_TEXT:
        return "msg_too_long", []
    return None


@slack_router.post("/api/chat.postMessage")
async def post_message(request: Request) -> Response:
    try:
        args = await _slack_args(request)
    except BadPayload:
        return _fail(request, "invalid_json")
    if error := _auth_error(request, args):
        return _fail(request, error)
    workspace = _workspace(request)
    channel = workspace.resolve(str(args.get("channel") or ""))
    if channel is None:
        return _fail(request, "channel_not_found")
    if workspace.archived(channel):
        return _fail(request, "is_archived")
    if problem := _content_problem(args):
        error, problems = problem
        extra = (
            {"errors": problems, "response_metadata": {"messages": problems}} if problems else {}
        )
        return _fail(request, error, extra=extra)
    if (wait := _limited(request, channel)) is not None:
        response = _fail(request, "ratelimited", status=429)
        response.headers.update(_retry_after(wait))
        return response
    message = workspace.post(channel, args, via="chat.postMessage")
    return JSONResponse({"ok": True, "channel": channel, "ts": message["ts"], "message": message})


@slack_router.api_route("/api/conversations.list", methods=["GET", "POST"])
async def conversations_list(request: Request) -> Response:
    args = await _slack_args(request)
    if error := _auth_error(request, args):
        return _fail(request, error)
    try:
        limit = max(1, min(int(args.get("limit", 100)), 1000))
        cursor = args.get("cursor") or ""
        start = int(base64.b64decode(cursor).decode().removeprefix("offset:")) if cursor else 0
    except ValueError:
        return _fail(request, "invalid_cursor")
    exclude = str(args.get("exclude_archived", "false")).lower() == "true"
    channels = _workspace(request).listing(exclude_archived=exclude)
    page = channels[start : start + limit]
    more = start + limit < len(channels)
    next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    body = {"ok": True, "channels": page, "response_metadata": {"next_cursor": next_cursor}}
    return JSONResponse(body)


@slack_router.api_route("/api/conversations.history", methods=["GET", "POST"])
async def conversations_history(request: Request) -> Response:
    """A channel's messages, newest first (``limit``, default 100); ``metadata`` only with
    ``include_all_metadata=true``, as Slack does."""
    args = await _slack_args(request)
    if error := _auth_error(request, args):
        return _fail(request, error)
    workspace = _workspace(request)
    channel = workspace.resolve(str(args.get("channel") or ""))
    if channel is None:
        return _fail(request, "channel_not_found")
    try:
        limit = max(1, min(int(args.get("limit", 100)), 999))
    except ValueError:
        return _fail(request, "invalid_limit")
    with_metadata = str(args.get("include_all_metadata", "false")).lower() == "true"
    shown = []
    for message in reversed(workspace.messages(channel)[-limit:]):
        kept = {k: v for k, v in message.items() if k in ("type", "user", "bot_id", "text", "ts")}
        if with_metadata and message.get("metadata"):
            kept["metadata"] = message["metadata"]
        shown.append(kept)
    return JSONResponse({"ok": True, "messages": shown, "has_more": False})


@slack_router.api_route("/api/auth.test", methods=["GET", "POST"])
async def auth_test(request: Request) -> Response:
    args = await _slack_args(request)
    if error := _auth_error(request, args):
        return _fail(request, error)
    return JSONResponse(_workspace(request).identity())


async def _webhook_body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = dict(parse_qsl((await request.body()).decode()))
        if "payload" not in form:
            raise BadPayload("payload field missing")
        body = json.loads(form["payload"])
    else:
        body = await read_json(request)
    if not isinstance(body, dict):
        raise BadPayload("body must be a JSON object")
    return body


def _text_refusal(request: Request, text: str, status: int, **headers: str) -> Response:
    mark_refused(request)
    return PlainTextResponse(text, status_code=status, headers=headers or None)


@slack_router.post("/services/{team}/{bot}/{secret}")
async def incoming_webhook(team: str, bot: str, secret: str, request: Request) -> Response:
    workspace = _workspace(request)
    channel = workspace.webhook_channel(f"{team}/{bot}/{secret}")
    if channel is None:
        return _text_refusal(request, "no_service", 404)
    try:
        body = await _webhook_body(request)
    except (BadPayload, ValueError):
        return _text_refusal(request, "invalid_payload", 400)
    if workspace.archived(channel):
        return _text_refusal(request, "channel_is_archived", 410)
    if problem := _content_problem(body):
        error = "invalid_blocks" if problem[0] == "invalid_blocks_format" else problem[0]
        return _text_refusal(request, error, 400)
    if (wait := _limited(request, channel)) is not None:
        return _text_refusal(request, "rate_limited", 429, **_retry_after(wait))
    workspace.post(channel, body, via="webhook", webhook=f"{team}/{bot}/{secret}")
    return PlainTextResponse("ok")


class ChannelList(BaseModel):
    channels: list[str] = Field(default_factory=list)
    archived: list[str] = Field(default_factory=list)


class NewWebhook(BaseModel):
    channel: str


class TokenList(BaseModel):
    revoked: list[str]


@control_router.get("/channels")
async def get_channels(request: Request) -> dict[str, Any]:
    return {"channels": _workspace(request).channels()}


@control_router.put("/channels")
async def add_channels(body: ChannelList, request: Request) -> dict[str, Any]:
    workspace = _workspace(request)
    workspace.add_channels(body.channels)
    workspace.archive(body.archived)
    return {"channels": workspace.channels()}


@control_router.get("/messages")
async def messages(request: Request, channel: str | None = None) -> JSONResponse:
    return JSONResponse(_workspace(request).messages(channel))


@control_router.get("/webhooks")
async def webhooks(request: Request) -> dict[str, Any]:
    return {"webhooks": _workspace(request).webhooks(str(request.base_url).rstrip("/"))}


@control_router.post("/webhooks", status_code=201)
async def add_webhook(body: NewWebhook, request: Request) -> JSONResponse:
    workspace = _workspace(request)
    path = workspace.add_webhook(body.channel)
    if path is None:
        return JSONResponse({"error": f"unknown channel {body.channel!r}"}, status_code=404)
    url = f"{str(request.base_url).rstrip('/')}/slack/services/{path}"
    return JSONResponse({"url": url, "channel": workspace.resolve(body.channel)}, status_code=201)


@control_router.put("/tokens")
async def revoke_tokens(body: TokenList, request: Request) -> dict[str, Any]:
    _workspace(request).revoke(body.revoked)
    return {"revoked": len(body.revoked)}
