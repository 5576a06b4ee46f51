"""In-memory CRM records, shared by the Salesforce and HubSpot shapes (thread-safe).

Every record remembers who created and last changed it (an :class:`~sandbox.identity.Actor`).
Every write that reaches the store lands in two logs:

* the **change log** (:class:`Change`, ``seq`` from 1 without gaps): creates, updates,
  deletes and undeletes with the fields before and after. Salesforce's CDC feed and HubSpot's
  webhook-style events are views of it, and so is the plain feed of :mod:`sandbox.crm_http`.
* the **writes log** (``GET /_sandbox/<platform>/writes``): one entry per record a request
  wrote, no-ops included (an update that changed nothing has ``changed: []``), with the actor
  and the request's ``seq`` in ``/_sandbox/<platform>/attempts`` — what a test counts to see
  that each change was written once and never echoed back.

``with store.lock:`` makes several writes one transaction (sObject collections, batches).
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from sandbox.identity import Actor

Fields = dict[str, Any]
ChangeOp = Literal["created", "updated", "deleted", "undeleted"]
MAX_CHANGES = 500_000
_WRITE_OPS = {
    "created": "create",
    "updated": "update",
    "deleted": "delete",
    "undeleted": "undelete",
}


def iso_z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class WriteContext:
    """The request a write belongs to; ``sequence`` numbers its changes (one transaction)."""

    actor: Actor
    transaction: str
    request_seq: int | None = None
    method: str = ""
    path: str = ""
    sequence: int = 0


@dataclass
class StoredRecord:
    object_type: str
    id: str
    fields: Fields
    created_at: datetime
    updated_at: datetime
    created_by: Actor
    updated_by: Actor
    deleted_at: datetime | None = None

    def snapshot(self) -> StoredRecord:
        return replace(self, fields=copy.deepcopy(self.fields))


@dataclass(frozen=True)
class Change:
    seq: int
    op: ChangeOp
    object_type: str
    id: str
    at: datetime
    changed: tuple[str, ...]
    before: Fields
    after: Fields
    actor: Actor
    transaction: str
    sequence: int
    previous_actor: Actor | None = None  # who had changed the record last before this

    def legacy(self) -> dict[str, Any]:
        """The plain ``/_changes`` item (the shape the REST poller of integration reads)."""
        return {
            "seq": self.seq,
            "op": self.op,
            "object_type": self.object_type,
            "id": self.id,
            "at": iso_z(self.at),
            "changed": list(self.changed),
            "fields": copy.deepcopy(self.after),
        }


def _norm(value: Any) -> str | None:
    return None if value is None else str(value).casefold()


@dataclass
class _Logs:
    changes: list[Change] = field(default_factory=list)
    first_seq: int = 1
    writes: list[dict[str, Any]] = field(default_factory=list)
    writes_seq: int = 0


class CrmStore:
    """Records per (object type, id), their change log and the log of writes."""

    def __init__(self, make_id: Callable[[str, int], str], max_changes: int = MAX_CHANGES) -> None:
        self._make_id = make_id
        self._max_changes = max_changes
        self.lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self.lock:
            self._numbers = itertools.count(1)
            self._records: dict[tuple[str, str], StoredRecord] = {}
            self._types: dict[str, str] = {}  # id → object type
            # (object type, field) → normalised value → ids; built on a field's first lookup.
            self._index: dict[tuple[str, str], dict[str | None, set[str]]] = {}
            self._logs = _Logs()

    # ---- writes ------------------------------------------------------------------------------

    def create(self, object_type: str, fields: Fields, context: WriteContext) -> StoredRecord:
        with self.lock:
            record_id = self._make_id(object_type, next(self._numbers))
            now = datetime.now(UTC)
            actor = context.actor
            record = StoredRecord(object_type, record_id, dict(fields), now, now, actor, actor)
            self._records[(object_type, record_id)] = record
            self._types[record_id] = object_type
            self._reindex(record, {})
            self._log("created", record, {}, sorted(fields), fields, context)
            return record.snapshot()

    def update(
        self, object_type: str, record_id: str, fields: Fields, context: WriteContext
    ) -> StoredRecord | None:
        """The updated record, or None when there is none (or it is deleted)."""
        with self.lock:
            record = self._records.get((object_type, record_id))
            if record is None or record.deleted_at is not None:
                return None
            before, previous = dict(record.fields), record.updated_by
            changed = sorted(k for k, v in fields.items() if before.get(k) != v)
            record.fields.update(fields)
            record.updated_at = datetime.now(UTC)
            record.updated_by = context.actor
            self._reindex(record, before)
            self._log("updated", record, before, changed, fields, context, previous)
            return record.snapshot()

    def delete(
        self, object_type: str, record_id: str, context: WriteContext
    ) -> Literal["deleted", "already_deleted", "missing"]:
        with self.lock:
            record = self._records.get((object_type, record_id))
            if record is None:
                return "missing"
            if record.deleted_at is not None:
                return "already_deleted"
            record.deleted_at = record.updated_at = datetime.now(UTC)
            record.updated_by = context.actor
            self._reindex(record, dict(record.fields))
            self._log("deleted", record, dict(record.fields), [], {}, context)
            return "deleted"

    def undelete(
        self, object_type: str, record_id: str, context: WriteContext
    ) -> StoredRecord | None:
        with self.lock:
            record = self._records.get((object_type, record_id))
            if record is None or record.deleted_at is None:
                return None
            record.deleted_at = None
            record.updated_at = datetime.now(UTC)
            record.updated_by = context.actor
            self._reindex(record, {})
            self._log("undeleted", record, {}, sorted(record.fields), {}, context)
            return record.snapshot()

    def seed(
        self, object_type: str, rows: Iterable[Fields], context: WriteContext, log: bool
    ) -> list[str]:
        """Bulk-create rows; with ``log=False`` they exist as if from before the feeds began."""
        with self.lock:
            if log:
                return [self.create(object_type, row, context).id for row in rows]
            ids = []
            now, actor = datetime.now(UTC), context.actor
            for row in rows:
                record_id = self._make_id(object_type, next(self._numbers))
                record = StoredRecord(object_type, record_id, dict(row), now, now, actor, actor)
                self._records[(object_type, record_id)] = record
                self._types[record_id] = object_type
                self._reindex(record, {})
                ids.append(record_id)
            return ids

    # ---- reads -------------------------------------------------------------------------------

    def get(
        self, object_type: str, record_id: str, include_deleted: bool = False
    ) -> StoredRecord | None:
        with self.lock:
            record = self._records.get((object_type, record_id))
            if record is None or (record.deleted_at is not None and not include_deleted):
                return None
            return record.snapshot()

    def get_any(self, record_id: str) -> StoredRecord | None:
        """The record with this id whatever its type, deleted ones included."""
        with self.lock:
            object_type = self._types.get(record_id)
            return None if object_type is None else self.get(object_type, record_id, True)

    def find(self, object_type: str, field_name: str, value: Any) -> list[str]:
        """Live ids of ``object_type`` whose ``field_name`` equals ``value`` (case-insensitive)."""
        with self.lock:
            index = self._index.get((object_type, field_name))
            if index is None:
                index = {}
                for record in self._records.values():
                    if record.object_type == object_type and record.deleted_at is None:
                        key = _norm(record.fields.get(field_name))
                        index.setdefault(key, set()).add(record.id)
                self._index[(object_type, field_name)] = index
            return sorted(index.get(_norm(value), ()))

    def records(self, object_type: str, include_deleted: bool = False) -> list[StoredRecord]:
        """Snapshots of every record of a type, oldest first."""
        with self.lock:
            return [
                r.snapshot()
                for r in self._records.values()
                if r.object_type == object_type and (include_deleted or r.deleted_at is None)
            ]

    def count(self, object_type: str) -> int:
        with self.lock:
            return sum(
                1
                for r in self._records.values()
                if r.object_type == object_type and r.deleted_at is None
            )

    def changes_after(self, seq: int, limit: int) -> list[Change]:
        with self.lock:
            start = max(seq + 1, self._logs.first_seq) - self._logs.first_seq
            return self._logs.changes[start : start + limit]

    @property
    def first_seq(self) -> int:
        """The oldest change still kept (older ones were dropped past ``max_changes``)."""
        with self.lock:
            return self._logs.first_seq

    @property
    def last_seq(self) -> int:
        with self.lock:
            return self._logs.first_seq + len(self._logs.changes) - 1

    def writes(self, since: int = 0, limit: int = 100_000) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy([w for w in self._logs.writes if w["seq"] > since][:limit])

    # ---- internals ---------------------------------------------------------------------------

    def _reindex(self, record: StoredRecord, before: Fields) -> None:
        for (object_type, field_name), index in self._index.items():
            if object_type != record.object_type:
                continue
            index.get(_norm(before.get(field_name)), set()).discard(record.id)
            if record.deleted_at is None:
                key = _norm(record.fields.get(field_name))
                index.setdefault(key, set()).add(record.id)

    def _log(
        self,
        op: ChangeOp,
        record: StoredRecord,
        before: Fields,
        changed: list[str],
        sent: Fields,
        context: WriteContext,
        previous: Actor | None = None,
    ) -> None:
        logs = self._logs
        context.sequence += 1
        seq = logs.first_seq + len(logs.changes)
        logs.changes.append(
            Change(
                seq=seq,
                op=op,
                object_type=record.object_type,
                id=record.id,
                at=record.updated_at,
                changed=tuple(changed),
                before=copy.deepcopy(before),
                after=copy.deepcopy(record.fields),
                actor=context.actor,
                transaction=context.transaction,
                sequence=context.sequence,
                previous_actor=previous,
            )
        )
        if len(logs.changes) > self._max_changes:
            dropped = len(logs.changes) - self._max_changes
            del logs.changes[:dropped]
            logs.first_seq += dropped
        logs.writes_seq += 1
        if len(logs.writes) >= self._max_changes:
            del logs.writes[: len(logs.writes) - self._max_changes + 1]
        logs.writes.append(
            {
                "seq": logs.writes_seq,
                "at": iso_z(record.updated_at),
                "request_seq": context.request_seq,
                "method": context.method,
                "path": context.path,
                "actor": context.actor.kind,
                "user_id": context.actor.user_id,
                "app_id": context.actor.app_id,
                "object_type": record.object_type,
                "id": record.id,
                "op": _WRITE_OPS[op],
                "fields": copy.deepcopy(sent),
                "changed": list(changed),
                "change_seq": seq,
            }
        )
