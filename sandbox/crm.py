"""In-memory CRM records with a change feed, shared by the Salesforce and HubSpot shapes.

Every create and update appends a change ``{seq, op, object_type, id, at, changed, record}``;
``GET /<platform>/_changes?since=<seq>&limit=`` returns the changes after ``since`` (oldest
first) and ``last_seq`` to pass as the next ``since``, so a CRM sync can poll either side.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

Record = dict[str, Any]

# Real key prefixes of common standard objects; others get a stable made-up one.
_SALESFORCE_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Lead": "00Q",
    "Case": "500",
    "Product2": "01t",
    "Task": "00T",
}
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def salesforce_checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character Salesforce id case-insensitive."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for position, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def salesforce_id(object_type: str, number: int) -> str:
    """An 18-character id: key prefix (3) + pod (2) + base-62 counter (10) + checksum (3)."""
    prefix = _SALESFORCE_PREFIXES.get(object_type)
    if prefix is None:
        digest = hashlib.sha256(object_type.encode()).digest()
        prefix = "a0" + _BASE62[digest[0] % 62]
    counter = ""
    for _ in range(10):
        number, digit = divmod(number, 62)
        counter = _BASE62[digit] + counter
    id15 = f"{prefix}5e{counter}"
    return id15 + salesforce_checksum(id15)


def to_18(record_id: str) -> str:
    return record_id + salesforce_checksum(record_id) if len(record_id) == 15 else record_id


class CrmStore:
    """Records per (object type, id), and the feed of changes made to them."""

    def __init__(self, make_id: Callable[[str, int], str]) -> None:
        self._make_id = make_id
        self._numbers = itertools.count(1)
        self._records: dict[tuple[str, str], Record] = {}
        self._changes: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def create(self, object_type: str, fields: Record) -> tuple[str, Record]:
        with self._lock:
            record_id = self._make_id(object_type, next(self._numbers))
            now = datetime.now(UTC)
            record = {"fields": dict(fields), "created_at": now, "updated_at": now}
            self._records[(object_type, record_id)] = record
            self._change("created", object_type, record_id, record, sorted(fields))
            return record_id, copy.deepcopy(record)

    def update(self, object_type: str, record_id: str, fields: Record) -> Record | None:
        with self._lock:
            record = self._records.get((object_type, record_id))
            if record is None:
                return None
            changed = sorted(k for k, v in fields.items() if record["fields"].get(k) != v)
            record["fields"].update(fields)
            record["updated_at"] = datetime.now(UTC)
            self._change("updated", object_type, record_id, record, changed)
            return copy.deepcopy(record)

    def get(self, object_type: str, record_id: str) -> Record | None:
        with self._lock:
            record = self._records.get((object_type, record_id))
            return copy.deepcopy(record) if record is not None else None

    def find(self, object_type: str, field: str, value: Any) -> tuple[str, Record] | None:
        """The first record of ``object_type`` whose ``field`` equals ``value`` (str-compared)."""
        with self._lock:
            for (kind, record_id), record in self._records.items():
                if kind == object_type and str(record["fields"].get(field)) == str(value):
                    return record_id, copy.deepcopy(record)
        return None

    def changes(self, since: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            # seq starts at 1 and has no gaps, so the list index is seq - 1.
            return copy.deepcopy(self._changes[max(since, 0) : max(since, 0) + limit])

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._changes.clear()

    def _change(
        self, op: str, object_type: str, record_id: str, record: Record, changed: list[str]
    ) -> None:
        self._changes.append(
            {
                "seq": len(self._changes) + 1,
                "op": op,
                "object_type": object_type,
                "id": record_id,
                "at": record["updated_at"].isoformat().replace("+00:00", "Z"),
                "changed": changed,
                "fields": copy.deepcopy(record["fields"]),
            }
        )


def changes_response(store: CrmStore, request: Request) -> JSONResponse:
    try:
        since = int(request.query_params.get("since", "0"))
        limit = min(int(request.query_params.get("limit", "500")), 5000)
    except ValueError:
        return JSONResponse({"error": "since and limit must be integers"}, status_code=400)
    changes = store.changes(since, limit)
    last_seq = changes[-1]["seq"] if changes else max(since, 0)
    return JSONResponse({"changes": changes, "last_seq": last_seq})
