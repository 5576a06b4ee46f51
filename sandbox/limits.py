"""Rate limits of the simulated platforms, as they document them, switchable for benchmarks.

``GET /_sandbox/limits`` shows them, ``PUT /_sandbox/limits`` changes any part (``{"hubspot":
{"enabled": false}}``), a reset restores these defaults:

* HubSpot: 100 requests per rolling 10 s per app (``TEN_SECONDLY_ROLLING``, the limit of a
  privately distributed app on Free/Starter), 250,000 per day, and the CRM search endpoints 5
  per second per account (``SECONDLY``, no ``X-HubSpot-RateLimit-*`` headers).
* Salesforce: API requests per rolling 24 h per org (``REQUEST_LIMIT_EXCEEDED``), reported in
  ``Sforce-Limit-Info: api-usage=used/max``.
* GitHub: 5,000 requests per hour per token, 60 per IP without one; 304s are free.
* Slack ``chat.postMessage`` and incoming webhooks: 1 message per second per channel, with a
  short burst allowed (a token bucket of ``burst`` messages).
* Teams webhooks: 4 requests per second per webhook.

A refused request does not use up quota (it never reached the platform's work).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class HubSpotLimits(_Section):
    max_requests: int = Field(default=100, ge=1)
    interval_ms: int = Field(default=10_000, ge=1)
    daily: int = Field(default=250_000, ge=1)
    search_per_second: int = Field(default=5, ge=1)


class SalesforceLimits(_Section):
    daily_requests: int = Field(default=100_000, ge=1)


class GitHubLimits(_Section):
    exceeded_status: Literal[403, 429] = 403
    authenticated_per_window: int = Field(default=5_000, ge=1)
    unauthenticated_per_window: int = Field(default=60, ge=1)
    window_s: int = Field(default=3_600, ge=1)
    poll_interval_s: int = Field(default=60, ge=0)


class SlackLimits(_Section):
    per_channel_per_s: float = Field(default=1.0, gt=0)
    burst: int = Field(default=3, ge=1)


class TeamsLimits(_Section):
    per_webhook_per_s: int = Field(default=4, ge=1)


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hubspot: HubSpotLimits = HubSpotLimits()
    salesforce: SalesforceLimits = SalesforceLimits()
    github: GitHubLimits = GitHubLimits()
    slack: SlackLimits = SlackLimits()
    teams: TeamsLimits = TeamsLimits()


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float = 0.0
    reset_at: float = 0.0  # epoch seconds the window ends (fixed windows)

    @property
    def retry_after_header(self) -> str:
        # Retry-After is whole seconds (RFC 9110 delay-seconds); round up, never down.
        return str(max(1, math.ceil(self.retry_after_s)))


class RollingWindow:
    """At most ``limit`` hits in any ``window_s`` seconds, per key."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}

    def take(self, key: str, limit: int, window_s: float, now: float) -> Verdict:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        if len(hits) >= limit:
            return Verdict(False, limit, 0, retry_after_s=hits[0] + window_s - now)
        hits.append(now)
        return Verdict(True, limit, limit - len(hits))


class FixedWindow:
    """At most ``limit`` hits per window that starts with a key's first hit (GitHub's hour)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    def take(
        self, key: str, limit: int, window_s: float, now: float, count: bool = True
    ) -> Verdict:
        start, used = self._windows.get(key, (now, 0))
        if now >= start + window_s:
            start, used = now, 0
        reset_at = start + window_s
        if used >= limit:
            return Verdict(False, limit, 0, retry_after_s=reset_at - now, reset_at=reset_at)
        used += 1 if count else 0
        self._windows[key] = (start, used)
        return Verdict(True, limit, limit - used, reset_at=reset_at)


class TokenBucket:
    """``rate`` tokens per second up to ``burst`` banked, per key (Slack's 1/s with bursts)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: float, burst: int, now: float) -> Verdict:
        tokens, at = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return Verdict(False, burst, 0, retry_after_s=(1.0 - tokens) / rate)
        self._buckets[key] = (tokens - 1.0, now)
        return Verdict(True, burst, int(tokens - 1.0))


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class LimitBook:
    """The current limits and the counters behind them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.settings = Limits()
        self._rolling = RollingWindow()
        self._fixed = FixedWindow()
        self._buckets = TokenBucket()

    def update(self, change: dict[str, Any]) -> Limits:
        """Merge a partial document into the limits; raises pydantic's ValidationError."""
        with self._lock:
            self.settings = Limits.model_validate(_merge(self.settings.model_dump(), change))
            return self.settings

    def reset(self) -> None:
        with self._lock:
            self.settings = Limits()
            self._rolling, self._fixed, self._buckets = (
                RollingWindow(),
                FixedWindow(),
                TokenBucket(),
            )

    def rolling(self, key: str, limit: int, window_s: float) -> Verdict:
        with self._lock:
            return self._rolling.take(key, limit, window_s, time.monotonic())

    def fixed(self, key: str, limit: int, window_s: float, count: bool = True) -> Verdict:
        # Fixed windows report their reset as an epoch time (GitHub's X-RateLimit-Reset).
        with self._lock:
            return self._fixed.take(key, limit, window_s, time.time(), count=count)

    def bucket(self, key: str, rate: float, burst: int) -> Verdict:
        with self._lock:
            return self._buckets.take(key, rate, burst, time.monotonic())
