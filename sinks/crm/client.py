"""What the CRM sync asks of a platform, whichever it is: :class:`CrmClient`.

Reads come back as :class:`~streams.crm.reconcile.Snapshot` (fields in the platform's own
names, the record's last modification time). Writes take many records at once, cut into the
platform's batch limits by the implementation, and answer **per record**: ``None`` (or the new
id, for a create) when it was written, the exception it failed with otherwise — a record the
platform refused is a :class:`~synapseops.errors.TargetRejected` of its own and never fails its
batch. A whole call that fails (429, 5xx, a timeout) raises, as :mod:`sinks.http` says.

A 429 with a ``Retry-After`` of at most :data:`MAX_INLINE_WAIT_S` is waited out inside the call
(up to :data:`INLINE_RETRIES` times): the limit is the platform's pace, and sending a batch of
records to a retry tier for a ten-second window would only delay them more. A longer wait
raises :class:`~synapseops.errors.RateLimited` for the road to honour. Each 429 is counted on
the worker's ``/metrics`` as ``synapseops_crm_rate_limited_total{platform,handling}``:
``platform`` the kind (``salesforce``, ``hubspot``), ``handling`` ``waited`` (inside the call)
or ``deferred`` (raised to the road's retry tiers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter
from pydantic import SecretStr

from sinks.http import HttpTarget, TargetResponse
from streams.crm.reconcile import Snapshot
from synapseops.errors import RateLimited
from synapseops.settings import Settings

RATE_LIMITED = Counter(
    "synapseops_crm_rate_limited_total",
    "429 answers of a CRM platform, by platform kind and handling (waited, deferred)",
    ["platform", "handling"],
)
MAX_INLINE_WAIT_S = 10.0
INLINE_RETRIES = 6
Written = Exception | None
Created = Exception | str


@dataclass(frozen=True)
class PlatformAccess:
    """One platform opened for use (the token decrypted, never logged)."""

    id: int
    name: str
    kind: str
    base_url: str
    token: SecretStr
    own_origin: str


@dataclass(frozen=True)
class FeedPage:
    events: list[dict[str, Any]]
    cursor: str


class CrmClient(Protocol):
    access: PlatformAccess

    async def read(
        self, object_type: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, Snapshot]:
        """The live records among ``ids`` (deleted and unknown ones are absent)."""
        ...

    async def find(
        self, object_type: str, field: str, values: Sequence[str], fields: Sequence[str]
    ) -> dict[str, Snapshot]:
        """Live records whose ``field`` equals one of ``values``, by the value (casefolded)."""
        ...

    async def update(
        self, object_type: str, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Written]:
        """``(id, fields)`` per record."""
        ...

    async def upsert(
        self, object_type: str, match_field: str, items: Sequence[Mapping[str, Any]]
    ) -> list[Created]:
        """Create (or update) by the match key: idempotent when a create is redone."""
        ...

    async def delete(self, object_type: str, ids: Sequence[str]) -> list[Written]: ...

    async def feed(self, object_type: str, cursor: str | None) -> FeedPage:
        """Change events after ``cursor`` (None: every change the platform still keeps)."""
        ...

    def pages(self, object_type: str, fields: Sequence[str]) -> AsyncIterator[list[Snapshot]]:
        """Every live record, a page at a time (a full sync's read)."""
        ...

    async def sample(self, object_type: str, fields: Sequence[str]) -> Snapshot | None:
        """The most recently changed live record (a mapping's preview), or None."""
        ...

    async def test(self) -> dict[str, Any]:
        """A cheap authenticated call; what it says about the account."""
        ...

    async def aclose(self) -> None: ...


T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def parse_instant(value: Any) -> datetime:
    """``2026-01-31T10:00:00.000+0000`` / ``...Z`` / epoch ms → an aware datetime."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    text = str(value or "").strip()
    if not text:
        return datetime.fromtimestamp(0, UTC)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class PacedTarget:
    """An :class:`HttpTarget` that waits out a short 429 itself (see the module doc)."""

    def __init__(self, access: PlatformAccess, settings: Settings, headers: dict[str, str]) -> None:
        self.access = access
        self.headers = {"Authorization": f"Bearer {access.token.get_secret_value()}", **headers}
        self.http = HttpTarget.for_connector(
            f"crm:{access.name}", access.base_url, settings, timeout_s=20.0
        )
        self.rate_limited = 0  # 429s waited out inside calls (the bench prints it)

    async def call(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> TargetResponse:
        sent = {**self.headers, **(headers or {})}
        for attempt in range(INLINE_RETRIES + 1):
            try:
                return await self.http.request(method, path, json_body=body, headers=sent)
            except RateLimited as exc:
                wait = exc.retry_after if exc.retry_after is not None else 1.0
                if attempt == INLINE_RETRIES or wait > MAX_INLINE_WAIT_S:
                    RATE_LIMITED.labels(self.access.kind, "deferred").inc()
                    raise
                RATE_LIMITED.labels(self.access.kind, "waited").inc()
                self.rate_limited += 1
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.http.aclose()
