"""What each simulated target saw: every attempt, and the requests it accepted.

``attempts`` holds every request that reached a target's routes, the injected failures
included (tests count tries with it). ``received`` holds only the requests the target
accepted: a 2xx answer that the target did not flag as a refusal (Slack's ``ok: false``).
Both lists are in arrival order. The sandbox keeps headers verbatim, credentials included —
it plays the receiving system, which sees them too — but it never logs them.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# A poller hammering a change feed must not grow the sandbox without bound.
MAX_RECORDS_PER_TARGET = 50_000
_EMPTY_SCHEMES = frozenset({"bearer", "basic", "token"})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def auth_scheme(headers: Mapping[str, str]) -> str | None:
    """``"bearer"``, ``"basic"``, ``"api_key"``, ... or None when no credential was sent."""
    auth = headers.get("authorization", "").strip()
    if auth:
        scheme, _, credential = auth.partition(" ")
        if credential.strip():
            return scheme.lower()
        return None if scheme.lower() in _EMPTY_SCHEMES else "raw"
    if headers.get("x-api-key", "").strip():
        return "api_key"
    return None


def decode_body(raw: bytes) -> tuple[Any, str | None]:
    """(parsed JSON, None) when the body is JSON, else (None, the body as text)."""
    if not raw:
        return None, None
    try:
        return json.loads(raw), None
    except ValueError:
        return None, raw.decode("utf-8", errors="replace")


@dataclass
class RequestRecord:
    seq: int
    target: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    body_text: str | None
    auth_scheme: str | None
    received_at: str
    status: int | None = None
    outcome: str = "pending"  # accepted | refused | injected
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "target": self.target,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
            "body_text": self.body_text,
            "auth_scheme": self.auth_scheme,
            "received_at": self.received_at,
            "status": self.status,
            "outcome": self.outcome,
            "replayed": self.replayed,
        }


class Recorder:
    def __init__(self, max_per_target: int = MAX_RECORDS_PER_TARGET) -> None:
        self._max = max_per_target
        self._seq = itertools.count(1)
        self._attempts: dict[str, deque[RequestRecord]] = {}
        self._received: dict[str, deque[RequestRecord]] = {}
        self._lock = threading.Lock()

    def _list(self, table: dict[str, deque[RequestRecord]], target: str) -> deque[RequestRecord]:
        return table.setdefault(target, deque(maxlen=self._max))

    def begin(
        self,
        target: str,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        raw_body: bytes,
    ) -> RequestRecord:
        body, body_text = decode_body(raw_body)
        with self._lock:
            record = RequestRecord(
                seq=next(self._seq),
                target=target,
                method=method,
                path=path,
                query=query,
                headers=dict(headers),
                body=body,
                body_text=body_text,
                auth_scheme=auth_scheme(headers),
                received_at=now_iso(),
            )
            self._list(self._attempts, target).append(record)
        return record

    def finish(self, record: RequestRecord, status: int, outcome: str, replayed: bool) -> None:
        with self._lock:
            record.status = status
            record.outcome = outcome
            record.replayed = replayed
            if outcome == "accepted":
                self._list(self._received, record.target).append(record)

    def attempts(self, target: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in self._attempts.get(target, ())]

    def received(self, target: str) -> list[dict[str, Any]]:
        with self._lock:
            records = sorted(self._received.get(target, ()), key=lambda r: r.seq)
            return [r.as_dict() for r in records]

    def clear(self, target: str | None = None) -> None:
        with self._lock:
            if target is None:
                self._attempts.clear()
                self._received.clear()
            else:
                self._attempts.pop(target, None)
                self._received.pop(target, None)
