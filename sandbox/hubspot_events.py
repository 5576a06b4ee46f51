"""HubSpot webhook-style change events: a pollable feed, and optional signed pushes.

Every change to a contact, company, deal or ticket becomes HubSpot's webhook events::

    {"eventId", "subscriptionId", "portalId", "appId", "occurredAt" (ms),
     "subscriptionType": "contact.creation" | "contact.propertyChange" | "contact.deletion"
                         | "contact.restore" (and deal.*, company.*, ticket.*),
     "attemptNumber": 0, "objectId", "changeSource", "sourceId",
     "propertyName", "propertyValue"   (propertyChange only),
     "changeFlag": "CREATED" | "DELETED" | "RESTORED"   (creation / deletion / restore)}

A creation also sends a ``propertyChange`` per property it set, as subscribed apps get them.
``changeSource`` is ``INTEGRATION`` with ``sourceId`` = the writing app's id for API writes,
``CRM_UI`` with ``userId:<id>`` for a person's edit, ``IMPORT`` for a seeded import.
``eventId`` grows with every event (the change's ``seq`` × 1000 + its index).

* ``GET /hubspot/_events?after=<eventId>&limit=`` (≤ 1000, default 100, bearer token, no quota)
  → ``{results, cursor, hasMore}``: pass ``cursor`` back as ``after``.
* ``PUT /_sandbox/hubspot/webhooks {target_url, client_secret, batch_size?, max_attempts?,
  retry_base_s?}`` pushes new events there the way HubSpot does: ``POST`` of a JSON array (≤
  100 events), ``X-HubSpot-Signature-Version: v3``, ``X-HubSpot-Request-Timestamp`` (ms) and
  ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, ``POST`` + URL + body +
  timestamp)). A non-2xx answer or a timeout is retried with ``attemptNumber`` + 1 and a
  growing pause, up to ``max_attempts``. ``GET`` shows the target (no secret) and the
  deliveries; ``DELETE`` stops pushing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
import zlib
from collections import deque
from typing import Any

import httpx
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import Change, CrmStore
from sandbox.hubspot_session import open_session, store
from sandbox.identity import HUBSPOT_APP_ID, HUBSPOT_PORTAL_ID, Actor
from sandbox.recorder import now_iso
from synapseops.logging import get_logger

log = get_logger(__name__)
router = APIRouter(prefix="/hubspot", tags=["hubspot"])
control_router = APIRouter(prefix="/_sandbox/hubspot", tags=["sandbox"])
NOUNS = {"contacts": "contact", "companies": "company", "deals": "deal", "tickets": "ticket"}
PER_CHANGE = 1000
MAX_LIMIT = 1000


def _subscription_id(subscription_type: str, property_name: str | None) -> int:
    key = f"{subscription_type}:{property_name or ''}".encode()
    return 100_000 + zlib.crc32(key) % 900_000


def _source(actor: Actor) -> dict[str, str]:
    if actor.kind == "human":
        return {"changeSource": "CRM_UI", "sourceId": f"userId:{actor.user_id}"}
    if actor.kind == "import":
        return {"changeSource": "IMPORT", "sourceId": "import"}
    return {"changeSource": "INTEGRATION", "sourceId": str(actor.app_id)}


def events_of(change: Change) -> list[dict[str, Any]]:
    noun = NOUNS.get(change.object_type)
    if noun is None:
        return []
    kinds: list[tuple[str, str | None, str | None]] = []  # (subscription, property, flag)
    if change.op == "created":
        kinds.append(("creation", None, "CREATED"))
        kinds += [("propertyChange", k, None) for k in change.changed if change.after.get(k)]
    elif change.op == "updated":
        kinds += [("propertyChange", k, None) for k in change.changed]
    elif change.op == "deleted":
        kinds.append(("deletion", None, "DELETED"))
    else:
        kinds.append(("restore", None, "RESTORED"))
    events = []
    for index, (kind, name, flag) in enumerate(kinds[: PER_CHANGE - 1]):
        subscription = f"{noun}.{kind}"
        event: dict[str, Any] = {
            "eventId": change.seq * PER_CHANGE + index,
            "subscriptionId": _subscription_id(subscription, name),
            "portalId": HUBSPOT_PORTAL_ID,
            "appId": HUBSPOT_APP_ID,
            "occurredAt": int(change.at.timestamp() * 1000),
            "subscriptionType": subscription,
            "attemptNumber": 0,
            "objectId": int(change.id),
            **_source(change.actor),
        }
        if name is not None:
            value = change.after.get(name)
            event |= {"propertyName": name, "propertyValue": "" if value is None else str(value)}
        if flag is not None:
            event["changeFlag"] = flag
        events.append(event)
    return events


def events_after(records: CrmStore, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` events with ``eventId > after``, and whether more are waiting."""
    found: list[dict[str, Any]] = []
    seq = max(after // PER_CHANGE - 1, 0)
    while len(found) < limit:
        changes = records.changes_after(seq, 500)
        if not changes:
            return found, False
        for change in changes:
            seq = change.seq
            for event in events_of(change):
                if event["eventId"] > after:
                    found.append(event)
                    if len(found) == limit:
                        return found, True
    return found, True


@router.get("/_events")
async def feed(request: Request) -> Response:
    open_session(request, metered=False)
    try:
        after = int(request.query_params.get("after", "0"))
        limit = max(1, min(int(request.query_params.get("limit", "100")), MAX_LIMIT))
    except ValueError:
        return JSONResponse({"status": "error", "message": "after and limit are integers"}, 400)
    events, more = events_after(store(request), after, limit)
    cursor = events[-1]["eventId"] if events else after
    return JSONResponse({"results": events, "cursor": str(cursor), "hasMore": more})


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_url: str
    client_secret: str = Field(min_length=1)
    batch_size: int = Field(default=100, ge=1, le=100)
    max_attempts: int = Field(default=10, ge=1, le=50)
    retry_base_s: float = Field(default=1.0, ge=0.0)
    timeout_s: float = Field(default=5.0, gt=0.0)


def signature_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + url.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


class WebhookPusher:
    """Sends new events to the configured target, in order, from the app's event loop."""

    def __init__(self, records: CrmStore) -> None:
        self._records = records
        self._lock = threading.Lock()
        self.target: WebhookTarget | None = None
        self._cursor = 0
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=10_000)

    def configure(self, target: WebhookTarget | None) -> None:
        with self._lock:
            self.target = target
            self._cursor = self._records.last_seq * PER_CHANGE + PER_CHANGE - 1

    def describe(self) -> dict[str, Any]:
        with self._lock:
            target = self.target.model_dump(exclude={"client_secret"}) if self.target else None
            return {"target": target, "deliveries": list(self.deliveries)}

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    await self._push_once(client)
                except Exception:  # the pusher outlives any one bad round; it says why
                    log.exception("hubspot webhook push failed")
                    await asyncio.sleep(1.0)

    async def _push_once(self, client: httpx.AsyncClient) -> None:
        with self._lock:
            target, cursor = self.target, self._cursor
        events = events_after(self._records, cursor, target.batch_size)[0] if target else []
        if target is None or not events:
            await asyncio.sleep(0.1)
            return
        await self._deliver(client, target, events)
        with self._lock:
            if self.target is target:
                self._cursor = events[-1]["eventId"]

    async def _deliver(
        self, client: httpx.AsyncClient, target: WebhookTarget, events: list[dict[str, Any]]
    ) -> None:
        for attempt in range(target.max_attempts):
            body = json.dumps([{**e, "attemptNumber": attempt} for e in events]).encode()
            stamp = str(int(time.time() * 1000))
            headers = {
                "Content-Type": "application/json",
                "X-HubSpot-Signature-Version": "v3",
                "X-HubSpot-Request-Timestamp": stamp,
                "X-HubSpot-Signature-v3": signature_v3(
                    target.client_secret, "POST", target.target_url, body, stamp
                ),
            }
            entry: dict[str, Any] = {
                "at": now_iso(),
                "attempt": attempt,
                "event_ids": [e["eventId"] for e in events],
            }
            try:
                answer = await client.post(
                    target.target_url, content=body, headers=headers, timeout=target.timeout_s
                )
                entry["status"] = answer.status_code
            except httpx.HTTPError as exc:
                entry["error"] = type(exc).__name__
            self.deliveries.append(entry)
            if 200 <= entry.get("status", 0) < 300:
                return
            await asyncio.sleep(target.retry_base_s * (2**attempt))
        log.warning("hubspot webhook events dropped after retries", extra={"events": len(events)})


def _pusher(request: Request) -> WebhookPusher:
    pusher: WebhookPusher = request.app.state.sandbox.hubspot_webhooks
    return pusher


@control_router.put("/webhooks")
async def configure(target: WebhookTarget, request: Request) -> dict[str, Any]:
    _pusher(request).configure(target)
    return _pusher(request).describe()


@control_router.get("/webhooks")
async def describe(request: Request) -> dict[str, Any]:
    return _pusher(request).describe()


@control_router.delete("/webhooks")
async def stop(request: Request) -> dict[str, Any]:
    _pusher(request).configure(None)
    return _pusher(request).describe()


@contextlib.asynccontextmanager
async def pushing(pusher: WebhookPusher) -> Any:
    """Run the pusher for the app's lifetime."""
    task = asyncio.create_task(pusher.run(), name="hubspot-webhooks")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
