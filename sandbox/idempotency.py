"""Idempotency keys the way Stripe and the IETF ``Idempotency-Key`` draft describe them.

* First request with a key: claimed (``STARTED``) while it executes; its response (status and
  body, success or business refusal alike) is stored when it completes.
* Same key, same request fingerprint, completed: the stored response is replayed (``REPLAY``).
* Same key, different fingerprint: ``MISMATCH`` (the server answers 422).
* Same key while the first is still executing: ``IN_FLIGHT`` (the server answers 409).
* A request that fails before executing (invalid input, crash) releases its claim, so the same
  key may be used again — Stripe saves no result for those either.
"""

from __future__ import annotations

import enum
import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any


class ClaimState(enum.Enum):
    STARTED = "started"
    REPLAY = "replay"
    IN_FLIGHT = "in_flight"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    response: StoredResponse | None = None


@dataclass
class _Entry:
    fingerprint: str
    response: StoredResponse | None = None  # None while in flight


def fingerprint(method: str, path: str, body: Any) -> str:
    """A stable digest of what the request asks for (key order in the JSON does not matter)."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def begin(self, key: str, request_fingerprint: str) -> Claim:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._entries[key] = _Entry(fingerprint=request_fingerprint)
                return Claim(ClaimState.STARTED)
            if entry.fingerprint != request_fingerprint:
                return Claim(ClaimState.MISMATCH)
            if entry.response is None:
                return Claim(ClaimState.IN_FLIGHT)
            return Claim(ClaimState.REPLAY, entry.response)

    def complete(self, key: str, response: StoredResponse) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.response is not None:
                raise KeyError(f"idempotency key {key!r} is not in flight")
            entry.response = response

    def release(self, key: str) -> None:
        """Forget an in-flight claim whose request never executed; completed keys stay."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.response is None:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
