"""Slack and Microsoft Teams receivers, shaped like the real APIs.

Slack Web API ``POST /slack/api/chat.postMessage`` (JSON or form body, token as
``Authorization: Bearer xoxb-…`` or a ``token`` field) answers HTTP 200 in every case, as Slack
does: ``{ok: true, channel, ts, message}``, or ``{ok: false, error}`` with ``not_authed``,
``channel_not_found`` (channels: :data:`DEFAULT_CHANNELS` plus ``PUT
/_sandbox/slack/channels``), ``no_text`` or ``invalid_blocks``. ``ok: false`` answers are not
in ``received``. Incoming webhooks ``POST /slack/services/{a}/{b}/{c}`` answer ``ok`` (text).

Teams ``POST /teams/webhook/{id}`` takes ``{type: "message", attachments: [{contentType:
"application/vnd.microsoft.card.adaptive", content: {type: "AdaptiveCard", version, ...}}]}``
→ 200 ``1``; any other shape, or a card version above 1.5, → 400.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from sandbox.gate import mark_refused
from sandbox.payloads import BadPayload, read_json

slack_router = APIRouter(prefix="/slack", tags=["slack"])
teams_router = APIRouter(prefix="/teams", tags=["teams"])

DEFAULT_CHANNELS = (
    "general",
    "alerts",
    "ops",
    "payments",
    "notifications",
    "approvals",
    "dead-letters",
    "integrations",
)
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MAX_CARD_VERSION = (1, 5)
_MAX_BLOCKS = 50
_MAX_TEXT = 40_000


def channel_id(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest().upper()
    return "C" + digest[:10]


class SlackWorkspace:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._channels: dict[str, str] = {}
        self.reset()

    def add_channels(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                bare = name.lstrip("#")
                self._channels[bare] = channel_id(bare)

    def channels(self) -> dict[str, str]:
        with self._lock:
            return dict(self._channels)

    def resolve(self, channel: str) -> str | None:
        """A channel name (with or without ``#``) or id → its id; None when unknown."""
        with self._lock:
            if channel in self._channels.values():
                return channel
            return self._channels.get(channel.lstrip("#"))

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts) % 1_000_000:06d}"

    def reset(self) -> None:
        with self._lock:
            self._channels = {name: channel_id(name) for name in DEFAULT_CHANNELS}


def _workspace(request: Request) -> SlackWorkspace:
    workspace: SlackWorkspace = request.app.state.sandbox.slack
    return workspace


def blocks_problem(blocks: Any) -> str | None:
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > _MAX_BLOCKS:
        return "invalid_blocks"
    if not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
        return "invalid_blocks"
    return None


async def _slack_args(request: Request) -> dict[str, Any]:
    """chat.postMessage takes JSON or a form whose ``blocks``/``attachments`` are JSON text."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadPayload("body must be a JSON object")
        return body
    args: dict[str, Any] = dict(parse_qsl((await request.body()).decode()))
    for name in ("blocks", "attachments"):
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError as exc:
                raise BadPayload(f"{name} is not JSON") from exc
    return args


def _slack_fail(request: Request, error: str) -> JSONResponse:
    mark_refused(request)
    return JSONResponse({"ok": False, "error": error})


@slack_router.post("/api/chat.postMessage")
async def post_message(request: Request) -> Response:
    try:
        args = await _slack_args(request)
    except BadPayload:
        return _slack_fail(request, "invalid_json")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not ((scheme.lower() == "bearer" and token.strip()) or args.get("token")):
        return _slack_fail(request, "not_authed")
    workspace = _workspace(request)
    channel = workspace.resolve(str(args.get("channel") or ""))
    if channel is None:
        return _slack_fail(request, "channel_not_found")
    text, blocks, attachments = args.get("text"), args.get("blocks"), args.get("attachments")
    if not text and not blocks and not attachments:
        return _slack_fail(request, "no_text")
    if problem := blocks_problem(blocks):
        return _slack_fail(request, problem)
    if isinstance(text, str) and len(text) > _MAX_TEXT:
        return _slack_fail(request, "msg_too_long")
    ts = workspace.next_ts()
    message: dict[str, Any] = {
        "type": "message",
        "user": "U0SANDBOX01",
        "bot_id": "B0SANDBOX01",
        "text": text or "",
        "ts": ts,
    }
    for optional in ("blocks", "attachments", "thread_ts"):
        if args.get(optional):
            message[optional] = args[optional]
    return JSONResponse({"ok": True, "channel": channel, "ts": ts, "message": message})


@slack_router.post("/services/{team}/{bot}/{secret}")
async def incoming_webhook(team: str, bot: str, secret: str, request: Request) -> Response:
    try:
        body = await read_json(request)
    except BadPayload:
        return PlainTextResponse("invalid_payload", status_code=400)
    if not isinstance(body, dict):
        return PlainTextResponse("invalid_payload", status_code=400)
    if not body.get("text") and not body.get("blocks") and not body.get("attachments"):
        return PlainTextResponse("no_text", status_code=400)
    if problem := blocks_problem(body.get("blocks")):
        return PlainTextResponse(problem, status_code=400)
    return PlainTextResponse("ok")


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


@teams_router.post("/webhook/{webhook_id}")
async def teams_webhook(webhook_id: str, request: Request) -> Response:
    try:
        body = await read_json(request)
    except BadPayload as exc:
        return JSONResponse({"error": "bad_payload", "message": str(exc)}, status_code=400)
    if problem := teams_problem(body):
        return JSONResponse({"error": "bad_payload", "message": problem}, status_code=400)
    return PlainTextResponse("1")
