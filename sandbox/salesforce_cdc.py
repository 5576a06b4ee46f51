"""Change Data Capture, pollable: ``GET /salesforce/cdc/data/{channel}?replayId=&limit=&wait=``.

Channels as Salesforce names them: ``ChangeEvents`` (every object), ``ContactChangeEvent``,
``LeadChangeEvent``, ``OpportunityChangeEvent``, ``Custom__ChangeEvent``. Each event is the
CometD message shape::

    {"schema": "<id>", "event": {"replayId": 42},
     "payload": {"ChangeEventHeader": {"entityName", "recordIds", "changeType" (CREATE / UPDATE /
                 DELETE / UNDELETE), "changeOrigin", "transactionKey", "sequenceNumber",
                 "commitTimestamp" (ms), "commitNumber", "commitUser", "nulledFields",
                 "diffFields", "changedFields"}, <fields>}}

CREATE and UNDELETE carry every field; UPDATE only the changed ones plus ``LastModifiedDate``
(and ``LastModifiedById`` when another user saved); DELETE only the header. A save that changed
nothing is still an UPDATE with ``changedFields: ["LastModifiedDate"]``, as on Salesforce.
Compound fields nest: ``Name {Salutation, FirstName, LastName}`` on Lead and Contact,
``MailingAddress``/``Address``/``BillingAddress`` ``{Street, City, State, PostalCode,
Country}``; ``changedFields`` says ``Name.FirstName``. ``changeOrigin`` is
``com/salesforce/api/rest/60.0;client=<Sforce-Call-Options client>`` for API writes (the
integration's default client is ``synapseops``), empty for a person's edit.

The answer: ``{channel, events, nextReplayId, latestReplayId, hasMore}``. Pass
``nextReplayId`` back as ``replayId`` to get the events after it; ``-1`` starts at the tip
(no events, just the cursor), ``-2`` replays everything still retained. A replay id that is
older than the retained events or newer than the latest → 400 ``INVALID_REPLAY_ID``, as the
Streaming API refuses it. ``wait`` (seconds, ≤ 30) long-polls until an event arrives.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.crm import Change, CrmStore
from sandbox.identity import Actor
from sandbox.salesforce import API_VERSION, refuse
from sandbox.salesforce_rules import FieldError
from sandbox.salesforce_session import open_session, store

router = APIRouter(prefix="/salesforce", tags=["salesforce"])
MAX_LIMIT = 1000
MAX_WAIT_S = 30.0
_CHANGE_TYPES = {
    "created": "CREATE",
    "updated": "UPDATE",
    "deleted": "DELETE",
    "undeleted": "UNDELETE",
}
_ADDRESS = ("Street", "City", "State", "PostalCode", "Country", "Latitude", "Longitude")
_NAME = {"Salutation": "Salutation", "FirstName": "FirstName", "LastName": "LastName"}


def _address(prefix: str) -> dict[str, str]:
    return {f"{prefix}{part}": part for part in _ADDRESS}


# object → compound field in the event → {field on the object: component in the event}
COMPOUNDS: dict[str, dict[str, dict[str, str]]] = {
    "Contact": {
        "Name": _NAME,
        "MailingAddress": _address("Mailing"),
        "OtherAddress": _address("Other"),
    },
    "Lead": {"Name": _NAME, "Address": _address("")},
    "Account": {"BillingAddress": _address("Billing"), "ShippingAddress": _address("Shipping")},
}


def change_origin(actor: Actor) -> str:
    if actor.kind == "human":
        return ""
    api = "bulkapi" if actor.kind == "import" else "rest"
    origin = f"com/salesforce/api/{api}/{API_VERSION.removeprefix('v')}"
    return f"{origin};client={actor.client}" if actor.client else origin


def schema_id(entity: str) -> str:
    digest = hashlib.sha256(f"{entity}ChangeEvent".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _ms(change: Change) -> int:
    return int(change.at.timestamp() * 1000)


def _group(object_type: str, values: dict[str, Any], whole: bool) -> dict[str, Any]:
    """Fields as the event carries them: components nested in their compound field."""
    grouped: dict[str, Any] = {}
    taken: set[str] = set()
    for compound, parts in COMPOUNDS.get(object_type, {}).items():
        present = {part: values[name] for name, part in parts.items() if name in values}
        taken |= parts.keys()
        if whole:
            nested = {part: values.get(name) for name, part in parts.items()}
            grouped[compound] = nested if any(v is not None for v in nested.values()) else None
        elif present:
            grouped[compound] = present
    grouped.update({k: v for k, v in values.items() if k not in taken})
    return grouped


def _dotted(object_type: str, names: list[str]) -> list[str]:
    owners = {
        name: f"{compound}.{part}"
        for compound, parts in COMPOUNDS.get(object_type, {}).items()
        for name, part in parts.items()
    }
    return [owners.get(name, name) for name in names]


def change_event(change: Change) -> dict[str, Any]:
    kind = change.object_type
    changed: list[str] = []
    nulled: list[str] = []
    fields: dict[str, Any] = {}
    stamp = change.at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if change.op in ("created", "undeleted"):
        fields = _group(kind, {k: v for k, v in change.after.items()}, whole=True)
        fields |= {
            "OwnerId": change.after.get("OwnerId", change.actor.user_id),
            "CreatedDate": stamp,
            "CreatedById": change.actor.user_id,
            "LastModifiedDate": stamp,
            "LastModifiedById": change.actor.user_id,
        }
    elif change.op == "updated":
        values = {name: change.after.get(name) for name in change.changed}
        fields = _group(kind, values, whole=False) | {"LastModifiedDate": stamp}
        changed = [*_dotted(kind, list(change.changed)), "LastModifiedDate"]
        if change.previous_actor is not None and change.previous_actor != change.actor:
            fields["LastModifiedById"] = change.actor.user_id
            changed.append("LastModifiedById")
        nulled = _dotted(kind, [n for n in change.changed if change.after.get(n) is None])
    header = {
        "entityName": kind,
        "recordIds": [change.id],
        "changeType": _CHANGE_TYPES[change.op],
        "changeOrigin": change_origin(change.actor),
        "transactionKey": change.transaction,
        "sequenceNumber": change.sequence,
        "commitTimestamp": _ms(change),
        "commitNumber": 10_000_000_000 + change.seq,
        "commitUser": change.actor.user_id,
        "nulledFields": nulled,
        "diffFields": [],
        "changedFields": changed,
    }
    return {
        "schema": schema_id(kind),
        "payload": {"ChangeEventHeader": header, **fields},
        "event": {"replayId": change.seq},
    }


def _entity(channel: str) -> str | None:
    """``ChangeEvents`` → None (all); ``ContactChangeEvent`` → Contact; ``X__ChangeEvent`` → X__c"""
    if channel == "ChangeEvents":
        return None
    if channel.endswith("__ChangeEvent"):
        return channel.removesuffix("__ChangeEvent") + "__c"
    if channel.endswith("ChangeEvent") and len(channel) > len("ChangeEvent"):
        return channel.removesuffix("ChangeEvent")
    raise refuse(404, [FieldError("NOT_FOUND", f"Unknown channel: /data/{channel}")])


def _start(records: CrmStore, raw: str | None) -> int:
    """The replay id to read after, from the subscriber's ``replayId``."""
    last = records.last_seq
    try:
        replay = int(raw) if raw is not None else -1
    except ValueError:
        replay = -3
    if replay == -1:
        return last
    if replay == -2:
        return records.first_seq - 1
    if replay < records.first_seq - 1 or replay > last:
        message = (
            f"The replayId {{{raw}}} you provided was invalid. Please provide a valid ID, "
            "-2 to replay all events, or -1 to replay only new events."
        )
        raise refuse(400, [FieldError("INVALID_REPLAY_ID", message)])
    return replay


def read_feed(records: CrmStore, entity: str | None, after: int, limit: int) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    cursor = after
    while len(events) < limit:
        batch = records.changes_after(cursor, max(limit, 500))
        if not batch:
            break
        for change in batch:
            cursor = change.seq
            if entity is None or change.object_type == entity:
                events.append(change_event(change))
                if len(events) == limit:
                    break
    latest = records.last_seq
    return {
        "events": events,
        "nextReplayId": cursor,
        "latestReplayId": latest,
        "hasMore": cursor < latest,
    }


@router.get("/cdc/data/{channel}")
async def poll(channel: str, request: Request) -> Response:
    open_session(request, metered=False)
    entity = _entity(channel)
    records = store(request)
    try:
        limit = max(1, min(int(request.query_params.get("limit", "100")), MAX_LIMIT))
        wait_s = max(0.0, min(float(request.query_params.get("wait", "0")), MAX_WAIT_S))
    except ValueError as exc:
        message = "limit must be an integer and wait a number of seconds"
        raise refuse(400, [FieldError("INVALID_QUERY_FILTER_OPERATOR", message)]) from exc
    after = _start(records, request.query_params.get("replayId"))
    answer = read_feed(records, entity, after, limit)
    deadline = time.monotonic() + wait_s
    while not answer["events"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        answer = read_feed(records, entity, answer["nextReplayId"], limit)
    return JSONResponse({"channel": f"/data/{channel}", **answer})
