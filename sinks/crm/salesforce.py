"""The Salesforce side of the CRM sync (REST API v60.0, sObject Collections, the CDC feed).

- reads: ``GET composite/sobjects/{type}?ids=&fields=`` (:data:`READ_CHUNK` ids a call: the
  answer stays under the response cap), match-key lookups by SOQL ``WHERE field IN (...)``;
- writes: sObject Collections, at most :data:`MAX_COLLECTION` (200) records a call with
  ``allOrNone: false`` so each record stands alone; creates are upserts by the match key
  (``PATCH composite/sobjects/{type}/{field}``), so a create redone after a crash updates the
  record it made instead of making a second;
- every call says ``Sforce-Call-Options: client=<own_origin>``: Salesforce stamps it in the
  change event's ``changeOrigin``, which is how the poller knows our own writes;
- the change feed: ``GET cdc/data/{Type}ChangeEvent?replayId=`` (``-2``: all retained).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from sinks.crm.client import (
    Created,
    FeedPage,
    PacedTarget,
    PlatformAccess,
    Written,
    chunks,
    parse_instant,
)
from streams.crm.model import match_value
from streams.crm.reconcile import Snapshot
from synapseops.errors import TargetRejected
from synapseops.settings import Settings

API = "/services/data/v60.0"
MAX_COLLECTION = 200
READ_CHUNK = 200
FIND_CHUNK = 100
FEED_LIMIT = 500
# A full read's batch: 500 records stay well under the response cap.
PAGE_SIZE = {"Sforce-Query-Options": "batchSize=500"}
SYSTEM = ("attributes", "Id", "IsDeleted", "CreatedDate", "CreatedById", "SystemModstamp")


def _snapshot(record: Mapping[str, Any]) -> Snapshot:
    fields = {k: v for k, v in record.items() if k not in SYSTEM}
    return Snapshot(str(record["Id"]), fields, parse_instant(record.get("LastModifiedDate")))


def _soql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _result(result: Mapping[str, Any] | None) -> Exception | None:
    if result is not None and result.get("success"):
        return None
    errors = (result or {}).get("errors") or [{"message": "no result for this record"}]
    text = "; ".join(f"{e.get('statusCode', '')}: {e.get('message', '')}" for e in errors)
    return TargetRejected(f"Salesforce refused the record: {text}", status=400, body=text)


class SalesforceClient:
    def __init__(self, access: PlatformAccess, settings: Settings) -> None:
        self.access = access
        self.target = PacedTarget(
            access, settings, {"Sforce-Call-Options": f"client={access.own_origin}"}
        )

    async def read(
        self, object_type: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, Snapshot]:
        wanted = ",".join(sorted({*fields, "LastModifiedDate"}))
        found: dict[str, Snapshot] = {}
        for part in chunks(list(dict.fromkeys(ids)), READ_CHUNK):
            path = f"{API}/composite/sobjects/{object_type}?ids={','.join(part)}&fields={wanted}"
            for record in (await self.target.call("GET", path)).json() or []:
                if record is not None:
                    snapshot = _snapshot(record)
                    found[snapshot.id] = snapshot
        return found

    async def find(
        self, object_type: str, field: str, values: Sequence[str], fields: Sequence[str]
    ) -> dict[str, Snapshot]:
        wanted = ", ".join(["Id", *sorted({*fields, field, "LastModifiedDate"} - {"Id"})])
        found: dict[str, Snapshot] = {}
        for part in chunks(sorted(set(values)), FIND_CHUNK):
            soql = (
                f"SELECT {wanted} FROM {object_type} WHERE {field} IN "
                f"({', '.join(_soql_text(v) for v in part)})"
            )
            answer = (await self.target.call("GET", f"{API}/query?q={quote(soql)}")).json()
            for record in answer.get("records", []):
                key = match_value(record.get(field))
                if key is not None:
                    found.setdefault(key, _snapshot(record))
        return found

    async def update(
        self, object_type: str, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Written]:
        results: list[Written] = []
        for part in chunks(items, MAX_COLLECTION):
            records = [
                {"attributes": {"type": object_type}, "id": record_id, **fields}
                for record_id, fields in part
            ]
            body = {"allOrNone": False, "records": records}
            answer = (await self.target.call("PATCH", f"{API}/composite/sobjects", body)).json()
            results += [_result(r) for r in _aligned(answer, len(part))]
        return results

    async def upsert(
        self, object_type: str, match_field: str, items: Sequence[Mapping[str, Any]]
    ) -> list[Created]:
        results: list[Created] = []
        path = f"{API}/composite/sobjects/{object_type}/{match_field}"
        for part in chunks(items, MAX_COLLECTION):
            records = [{"attributes": {"type": object_type}, **fields} for fields in part]
            body = {"allOrNone": False, "records": records}
            answer = (await self.target.call("PATCH", path, body)).json()
            for result in _aligned(answer, len(part)):
                failure = _result(result)
                if failure is None and result is not None:
                    results.append(str(result["id"]))
                else:
                    results.append(failure or _result(None) or Exception("no result"))
        return results

    async def delete(self, object_type: str, ids: Sequence[str]) -> list[Written]:
        results: list[Written] = []
        for part in chunks(ids, MAX_COLLECTION):
            path = f"{API}/composite/sobjects?ids={','.join(part)}&allOrNone=false"
            answer = (await self.target.call("DELETE", path)).json()
            for result in _aligned(answer, len(part)):
                failure = _result(result)
                gone = failure is not None and "ENTITY_IS_DELETED" in str(failure)
                results.append(None if gone else failure)  # already deleted is deleted
        return results

    async def feed(self, object_type: str, cursor: str | None) -> FeedPage:
        replay = cursor if cursor is not None else "-2"
        path = f"/cdc/data/{object_type}ChangeEvent?replayId={replay}&limit={FEED_LIMIT}"
        answer = (await self.target.call("GET", path)).json()
        return FeedPage(list(answer.get("events", [])), str(answer.get("nextReplayId", replay)))

    async def pages(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[Snapshot]]:
        wanted = ", ".join(["Id", *sorted({*fields, "LastModifiedDate"} - {"Id"})])
        path: str | None = f"{API}/query?q={quote(f'SELECT {wanted} FROM {object_type}')}"
        while path is not None:
            answer = (await self.target.call("GET", path, headers=PAGE_SIZE)).json()
            yield [_snapshot(r) for r in answer.get("records", [])]
            path = answer.get("nextRecordsUrl") if not answer.get("done", True) else None

    async def sample(self, object_type: str, fields: Sequence[str]) -> Snapshot | None:
        wanted = ", ".join(["Id", *sorted({*fields, "LastModifiedDate"} - {"Id"})])
        soql = f"SELECT {wanted} FROM {object_type} ORDER BY LastModifiedDate DESC LIMIT 1"
        answer = (await self.target.call("GET", f"{API}/query?q={quote(soql)}")).json()
        records = answer.get("records") or []
        return _snapshot(records[0]) if records else None

    async def test(self) -> dict[str, Any]:
        answer = (await self.target.call("GET", f"{API}/limits")).json()
        daily = answer.get("DailyApiRequests", {})
        return {"daily_api_requests": daily.get("Max"), "remaining": daily.get("Remaining")}

    async def aclose(self) -> None:
        await self.target.aclose()


def _aligned(answer: Any, count: int) -> list[Mapping[str, Any] | None]:
    """One result per record sent, in order (a short answer leaves the rest without one)."""
    results = list(answer) if isinstance(answer, list) else []
    return [*results[:count], *([None] * max(0, count - len(results)))]
