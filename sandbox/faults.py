"""Fault injection: which requests to a simulated target fail, how, and how slowly.

One :class:`Fault` per target (posting a new one replaces the old). A fault has two parts:

* **latency** (``latency_ms``) delays *every* request to the target while the fault is set, so
  a client with a shorter timeout times out. The target still does the work: a request whose
  client gave up may well have been accepted (as with any real server), which is exactly what
  idempotent retries must survive.
* **failure**: either deterministic — ``count: N`` fails exactly the next ``N`` requests and then
  stops failing (``error_rate`` is ignored) — or random — ``error_rate`` (0..1) of requests fail.
  A failed request answers ``status`` and never reaches the target, so it is in the target's
  ``attempts`` but not in its ``received`` list. ``retry_after_s`` adds ``Retry-After`` to 429
  and 503 answers. ``seed`` makes the random failures repeatable; ``path_prefix`` limits the
  fault to paths starting with it (e.g. ``/finance/v1/settlements``).

The book is shared between the HTTP server and the SMTP thread, hence the lock.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RETRY_AFTER_STATUSES = frozenset({429, 503})


class Fault(BaseModel):
    """The body of ``POST /_sandbox/faults``."""

    model_config = ConfigDict(extra="forbid")

    target: str
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    status: int = Field(503, ge=400, le=599)
    latency_ms: int = Field(0, ge=0, le=600_000)
    retry_after_s: float | None = Field(None, ge=0)
    count: int | None = Field(None, ge=0)
    path_prefix: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class FaultDecision:
    """What the gate does with one request: wait ``latency_s``, then fail or pass it on."""

    latency_s: float = 0.0
    fail_status: int | None = None
    retry_after_s: float | None = None

    @property
    def fails(self) -> bool:
        return self.fail_status is not None

    def headers(self) -> dict[str, str]:
        if self.fail_status in RETRY_AFTER_STATUSES and self.retry_after_s is not None:
            # Retry-After is whole seconds (RFC 9110 delay-seconds); round up, never down.
            return {"Retry-After": str(math.ceil(self.retry_after_s))}
        return {}


NO_FAULT = FaultDecision()


@dataclass
class _ActiveFault:
    fault: Fault
    remaining: int | None
    rng: random.Random
    injected: int = 0
    passed: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = self.fault.model_dump()
        data.update(remaining=self.remaining, injected=self.injected, passed=self.passed)
        return data


class UnknownTarget(ValueError):
    pass


class FaultBook:
    """The faults currently set, and the decision for each incoming request."""

    def __init__(self, targets: frozenset[str]) -> None:
        self._targets = targets
        self._faults: dict[str, _ActiveFault] = {}
        self._lock = threading.Lock()

    @property
    def targets(self) -> frozenset[str]:
        return self._targets

    def put(self, fault: Fault) -> dict[str, Any]:
        if fault.target not in self._targets:
            raise UnknownTarget(f"unknown target {fault.target!r}; known: {sorted(self._targets)}")
        active = _ActiveFault(fault=fault, remaining=fault.count, rng=random.Random(fault.seed))
        with self._lock:
            self._faults[fault.target] = active
            return active.as_dict()

    def clear(self, target: str | None = None) -> int:
        """Remove the fault of ``target`` (all faults when None); returns how many went."""
        with self._lock:
            if target is None:
                cleared = len(self._faults)
                self._faults.clear()
                return cleared
            return 1 if self._faults.pop(target, None) is not None else 0

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [active.as_dict() for active in self._faults.values()]

    def decide(self, target: str, path: str) -> FaultDecision:
        with self._lock:
            active = self._faults.get(target)
            if active is None:
                return NO_FAULT
            fault = active.fault
            if fault.path_prefix and not path.startswith(fault.path_prefix):
                return NO_FAULT
            latency_s = fault.latency_ms / 1000.0
            if active.remaining is not None:
                fails = active.remaining > 0
                if fails:
                    active.remaining -= 1
            else:
                fails = fault.error_rate > 0 and active.rng.random() < fault.error_rate
            if not fails:
                active.passed += 1
                return FaultDecision(latency_s=latency_s)
            active.injected += 1
            return FaultDecision(
                latency_s=latency_s, fail_status=fault.status, retry_after_s=fault.retry_after_s
            )
