"""CrmEvent: one change to sync, as it travels on ``crm.changes`` (pure, no I/O).

The value is JSON ``{mapping_id, side, object, id, op, seq, at, full_sync}``: *which*
record moved on which side (``op`` ``upsert`` or ``delete``, ``seq`` its position in that
side's change feed; -1 for a full sync's look), never the record's fields — the pipeline reads
both sides as they are when it handles the event (:mod:`streams.crm.reconcile`), so an event
that waited on a retry tier can never write stale values. The Kafka key is the record's link
(:func:`link_key`), so one pair's events stay in order on one partition.

A resolve command (``crm.resolve-command``) is ``{conflict_id, choice}``: a person chose the
Salesforce or the HubSpot value of a held field.

The feeds' own shapes are read here too: a Salesforce change event (``ChangeEventHeader``:
``changeType``, ``recordIds``, ``changeOrigin``, ``commitUser``) and HubSpot webhook events
(``subscriptionType``, ``objectId``, ``changeSource``, ``sourceId``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from streams.crm.model import Side
from synapseops.errors import SchemaInvalid, Undecodable

Op = Literal["upsert", "delete"]
HUBSPOT_NOUNS = {"contacts": "contact", "companies": "company", "deals": "deal"}
_SF_OPS: dict[str, Op] = {
    "CREATE": "upsert",
    "UPDATE": "upsert",
    "UNDELETE": "upsert",
    "DELETE": "delete",
}


@dataclass(frozen=True)
class CrmChange:
    mapping_id: int
    side: Side
    object: str
    id: str
    op: Op
    seq: int  # the change's feed position; -1 for a full sync's look at a pair
    at: str = ""
    full_sync: int | None = None  # the manual full sync that asked for this look

    @property
    def event_id(self) -> str:
        return f"crm:{self.mapping_id}:{self.side}:{self.seq}:{self.id}"

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


@dataclass(frozen=True)
class ResolveCommand:
    conflict_id: int
    choice: Side

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


def _load(raw: bytes | None) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise Undecodable(f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SchemaInvalid("a CRM event is a JSON object")
    return body


def decode_change(raw: bytes | None) -> CrmChange:
    body = _load(raw)
    try:
        change = CrmChange(
            mapping_id=int(body["mapping_id"]),
            side=body["side"],
            object=str(body["object"]),
            id=str(body["id"]),
            op=body["op"],
            seq=int(body["seq"]),
            at=str(body.get("at", "")),
            full_sync=int(body["full_sync"]) if body.get("full_sync") is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaInvalid(f"CRM change event: {exc!r}") from exc
    if change.side not in ("salesforce", "hubspot") or change.op not in ("upsert", "delete"):
        raise SchemaInvalid(f"CRM change event: side {change.side!r}, op {change.op!r}")
    return change


def decode_resolve(raw: bytes | None) -> ResolveCommand:
    body = _load(raw)
    try:
        command = ResolveCommand(conflict_id=int(body["conflict_id"]), choice=body["choice"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaInvalid(f"CRM resolve command: {exc!r}") from exc
    if command.choice not in ("salesforce", "hubspot"):
        raise SchemaInvalid(f"CRM resolve command: choice {command.choice!r}")
    return command


def link_key(mapping_id: int, salesforce_id: str | None, side: Side, record_id: str) -> bytes:
    """A linked pair is keyed by its Salesforce id, so both sides' events share a partition;
    a record not linked yet by its own id."""
    if salesforce_id:
        return f"{mapping_id}:salesforce:{salesforce_id}".encode()
    return f"{mapping_id}:{side}:{record_id}".encode()


def salesforce_own(header: dict[str, Any], own_client: str, own_user: str | None) -> bool:
    """Whether a change event was made by the integration itself (origin or user)."""
    origin = str(header.get("changeOrigin") or "")
    if own_client and f"client={own_client}" in origin.split(";"):
        return True
    return bool(own_user) and header.get("commitUser") == own_user


def salesforce_changes(
    mapping_id: int,
    object_type: str,
    events: list[dict[str, Any]],
    own_client: str,
    own_user: str | None,
) -> tuple[list[CrmChange], int]:
    """The changes of a CDC page not made by us, and how many were our own (skipped)."""
    found: list[CrmChange] = []
    own = 0
    for event in events:
        payload = event.get("payload") or {}
        header = payload.get("ChangeEventHeader") or {}
        if header.get("entityName") != object_type:
            continue
        if salesforce_own(header, own_client, own_user):
            own += 1
            continue
        op = _SF_OPS.get(str(header.get("changeType")))
        if op is None:
            continue
        seq = int((event.get("event") or {}).get("replayId", 0))
        at = str(header.get("commitTimestamp", ""))
        for record_id in header.get("recordIds") or []:
            found.append(
                CrmChange(mapping_id, "salesforce", object_type, str(record_id), op, seq, at)
            )
    return found, own


def hubspot_changes(
    mapping_id: int, object_type: str, events: list[dict[str, Any]], own_app: str
) -> tuple[list[CrmChange], int]:
    """One change per object and HubSpot change (the events of one save share their
    ``eventId // 1000``... we keep the last event per object and op), and our own count."""
    noun = HUBSPOT_NOUNS.get(object_type)
    latest: dict[tuple[str, Op], CrmChange] = {}
    own = 0
    for event in events:
        kind = str(event.get("subscriptionType", ""))
        subject, _, action = kind.partition(".")
        if subject != noun:
            continue
        if event.get("changeSource") == "INTEGRATION" and str(event.get("sourceId")) == own_app:
            own += 1
            continue
        op: Op = "delete" if action == "deletion" else "upsert"
        record_id = str(event.get("objectId"))
        change = CrmChange(
            mapping_id,
            "hubspot",
            object_type,
            record_id,
            op,
            int(event.get("eventId", 0)),
            str(event.get("occurredAt", "")),
        )
        latest.pop((record_id, "delete" if op == "upsert" else "upsert"), None)
        latest.pop((record_id, op), None)
        latest[(record_id, op)] = change  # re-inserted: dict order is the order of the last
    return sorted(latest.values(), key=lambda c: c.seq), own
