"""The HubSpot side of the CRM sync (CRM v3 objects, batch endpoints, webhook-style events).

- reads: ``batch/read`` (≤ :data:`MAX_BATCH` ids a call), by id or by the match key
  (``idProperty``);
- writes: ``batch/update`` by id and ``batch/upsert`` by the match key (a create redone after
  a crash updates what it made), ≤ 100 inputs a call; a 207 answer names the inputs that
  failed (``context.ids``), each of which gets its own error;
- the change feed: ``GET _events?after=<eventId>`` — the webhook events HubSpot pushes, kept
  pollable by the platform; ``changeSource: INTEGRATION`` with ``sourceId`` = our app id
  (``own_origin``) are our own writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sinks.crm.client import (
    Created,
    FeedPage,
    PacedTarget,
    PlatformAccess,
    Written,
    chunks,
    parse_instant,
)
from streams.crm.model import match_value, norm
from streams.crm.reconcile import Snapshot
from synapseops.errors import TargetRejected
from synapseops.settings import Settings

OBJECTS = "/crm/v3/objects"
MAX_BATCH = 100
FEED_LIMIT = 1000
MODIFIED = ("lastmodifieddate", "hs_lastmodifieddate")
SYSTEM = ("createdate", "hs_object_id", *MODIFIED)


def _snapshot(result: Mapping[str, Any]) -> Snapshot:
    properties = dict(result.get("properties") or {})
    modified = next((properties[m] for m in MODIFIED if properties.get(m)), result.get("updatedAt"))
    fields = {k: v for k, v in properties.items() if k not in SYSTEM}
    return Snapshot(str(result["id"]), fields, parse_instant(modified))


def _as_text(value: Any) -> str:
    """HubSpot properties are text; an empty string clears one."""
    found = norm(value)
    return "" if found is None else found


def _failures(answer: Mapping[str, Any]) -> dict[str, Exception]:
    """Input id → its error, from a 207's ``errors``."""
    failed: dict[str, Exception] = {}
    for error in answer.get("errors") or []:
        message = f"HubSpot refused the record: {error.get('category')}: {error.get('message')}"
        for record_id in (error.get("context") or {}).get("ids") or []:
            failed[str(record_id).casefold()] = TargetRejected(
                message, status=int(error.get("status") or 400), body=str(error.get("message"))
            )
    return failed


class HubSpotClient:
    def __init__(self, access: PlatformAccess, settings: Settings) -> None:
        self.access = access
        self.target = PacedTarget(access, settings, {})

    async def _read(
        self, object_type: str, ids: Sequence[str], fields: Sequence[str], id_property: str | None
    ) -> list[Snapshot]:
        found: list[Snapshot] = []
        for part in chunks(list(dict.fromkeys(ids)), MAX_BATCH):
            body: dict[str, Any] = {
                "inputs": [{"id": i} for i in part],
                "properties": sorted({*fields, *MODIFIED}),
            }
            if id_property:
                body["idProperty"] = id_property
            path = f"{OBJECTS}/{object_type}/batch/read"
            answer = (await self.target.call("POST", path, body)).json() or {}
            found += [_snapshot(r) for r in answer.get("results", []) if not r.get("archived")]
        return found

    async def read(
        self, object_type: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, Snapshot]:
        return {s.id: s for s in await self._read(object_type, ids, fields, None)}

    async def find(
        self, object_type: str, field: str, values: Sequence[str], fields: Sequence[str]
    ) -> dict[str, Snapshot]:
        found = await self._read(object_type, sorted(set(values)), [*fields, field], field)
        by_value: dict[str, Snapshot] = {}
        for snapshot in found:
            key = match_value(snapshot.fields.get(field))
            if key is not None:
                by_value.setdefault(key, snapshot)
        return by_value

    async def update(
        self, object_type: str, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Written]:
        results: list[Written] = []
        for part in chunks(items, MAX_BATCH):
            inputs = [
                {"id": record_id, "properties": {k: _as_text(v) for k, v in fields.items()}}
                for record_id, fields in part
            ]
            path = f"{OBJECTS}/{object_type}/batch/update"
            answer = (await self.target.call("POST", path, {"inputs": inputs})).json() or {}
            done = {str(r.get("id")) for r in answer.get("results", [])}
            failed = _failures(answer)
            for record_id, _ in part:
                results.append(_outcome(record_id in done, failed.get(record_id.casefold())))
        return results

    async def upsert(
        self, object_type: str, match_field: str, items: Sequence[Mapping[str, Any]]
    ) -> list[Created]:
        results: list[Created] = []
        for part in chunks(items, MAX_BATCH):
            inputs = [
                {
                    "id": str(fields[match_field]),
                    "idProperty": match_field,
                    "properties": {k: _as_text(v) for k, v in fields.items() if k != match_field},
                }
                for fields in part
            ]
            path = f"{OBJECTS}/{object_type}/batch/upsert"
            answer = (await self.target.call("POST", path, {"inputs": inputs})).json() or {}
            made = {
                match_value((r.get("properties") or {}).get(match_field)): str(r["id"])
                for r in answer.get("results", [])
            }
            failed = _failures(answer)
            for fields in part:
                key = match_value(fields[match_field]) or ""
                made_id = made.get(key)
                error = failed.get(key) or _outcome(False, None)
                results.append(made_id if made_id is not None else error or _missing())
        return results

    async def delete(self, object_type: str, ids: Sequence[str]) -> list[Written]:
        for part in chunks(ids, MAX_BATCH):
            path = f"{OBJECTS}/{object_type}/batch/archive"
            await self.target.call("POST", path, {"inputs": [{"id": i} for i in part]})
        return [None for _ in ids]  # archive answers 204 for every input, as HubSpot does

    async def feed(self, object_type: str, cursor: str | None) -> FeedPage:
        after = cursor if cursor is not None else "0"
        answer = (
            await self.target.call("GET", f"/_events?after={after}&limit={FEED_LIMIT}")
        ).json()
        return FeedPage(list(answer.get("results", [])), str(answer.get("cursor", after)))

    async def pages(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[Snapshot]]:
        wanted = ",".join(sorted({*fields, *MODIFIED}))
        after: str | None = "0"
        while after is not None:
            path = f"{OBJECTS}/{object_type}?limit={MAX_BATCH}&properties={wanted}&after={after}"
            answer = (await self.target.call("GET", path)).json() or {}
            yield [_snapshot(r) for r in answer.get("results", [])]
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")

    async def sample(self, object_type: str, fields: Sequence[str]) -> Snapshot | None:
        wanted = ",".join(sorted({*fields, *MODIFIED}))
        path = f"{OBJECTS}/{object_type}?limit=1&properties={wanted}"
        results = ((await self.target.call("GET", path)).json() or {}).get("results") or []
        return _snapshot(results[0]) if results else None

    async def test(self) -> dict[str, Any]:
        answer = await self.target.call("GET", f"{OBJECTS}/contacts?limit=1")
        return {
            "rate_limit_max": answer.headers.get("x-hubspot-ratelimit-max"),
            "rate_limit_remaining": answer.headers.get("x-hubspot-ratelimit-remaining"),
        }

    async def aclose(self) -> None:
        await self.target.aclose()


def _missing() -> Exception:
    return TargetRejected("HubSpot gave no result for this record", status=502, body="")


def _outcome(done: bool, error: Exception | None) -> Written:
    if done:
        return None
    return error if error is not None else _missing()
