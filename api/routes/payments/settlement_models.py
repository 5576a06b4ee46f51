"""The bodies of ``/api/v1/settlements`` (pydantic): what a settlement, its events, attempts,
audit trail and approval look like on the wire, the decision a person sends, the daily volumes
and the reconciliation; and the two conversions from the rows of :mod:`sinks.payments.queries`
and :mod:`sinks.payments.reconciliation`.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sinks.payments import reconciliation
from streams.payments.events import SettlementCommand


class SettlementBase(BaseModel):
    settlement_id: str
    payment_id: str
    kind: str
    amount: int = Field(description="minor units of the currency")
    currency: str
    state: str


class SettlementPublic(SettlementBase):
    reason: str | None
    finance_reference: str | None
    event_created: datetime | None
    last_event_id: str | None
    trace_id: str | None
    received_at: datetime | None
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None
    approved_by: str | None
    approved_at: datetime | None
    approval_decision: str | None


class SettlementsPublic(BaseModel):
    """Newest first; pass ``next_offset`` as ``offset`` for the next page (null: last page)."""

    items: list[SettlementPublic]
    total: int
    next_offset: int | None


class PaymentEventPublic(BaseModel):
    """A Stripe event as received: ``raw_base64`` is the exact signed body, ``raw_text`` the
    same as text when it is UTF-8."""

    event_id: str
    event_type: str
    created: datetime | None
    api_version: str | None
    livemode: bool | None
    raw_text: str | None
    raw_base64: str
    http_headers: dict[str, Any]
    traceparent: str | None
    trace_id: str | None
    topic: str
    partition: int
    offset: int
    received_at: datetime
    stored_at: datetime
    processed_at: datetime | None
    outcome: str | None
    reason: str | None


class AttemptPublic(BaseModel):
    id: int
    event_id: str | None
    started_at: datetime
    duration_ms: int
    request: dict[str, Any]
    response_status: int | None
    response_body: str | None
    outcome: str
    error_class: str | None


class AuditEntryPublic(BaseModel):
    id: int
    at: datetime
    action: str
    actor: str
    detail: dict[str, Any]


class ApprovalPublic(BaseModel):
    decision: str
    actor: str | None
    at: datetime | None


class SettlementDetail(SettlementPublic):
    approval: ApprovalPublic | None
    events: list[PaymentEventPublic]
    attempts: list[AttemptPublic]
    audit: list[AuditEntryPublic]


class DecisionRequest(BaseModel):
    """Why (optional). Who decided is the authenticated principal, never a field: a body
    naming an ``actor`` is refused (422) so no client believes its name was recorded."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _no_actor(cls, data: Any) -> Any:
        if isinstance(data, dict) and "actor" in data:
            raise ValueError(
                "'actor' is not accepted: the approver recorded is the authenticated principal"
            )
        return data


class DecisionAccepted(BaseModel):
    command: SettlementCommand
    topic: str
    partition: int
    offset: int


class DailyVolume(BaseModel):
    day: date
    currency: str
    state: str
    count: int
    amount: int = Field(description="sum of amounts, minor units")


class DailyVolumesPublic(BaseModel):
    items: list[DailyVolume]


class BucketPublic(BaseModel):
    count: int
    amounts: dict[str, int] = Field(description="currency -> minor units")


class ReconciliationPublic(BaseModel):
    """Every Stripe event accepted on ``day`` (UTC) in exactly one bucket when ``balanced``."""

    day: date
    accepted: BucketPublic
    settled: BucketPublic
    failed: BucketPublic
    dead: BucketPublic
    pending_approval: BucketPublic
    pending: BucketPublic
    no_effect: BucketPublic
    accounted: int
    balanced: bool


def bucket_public(bucket: reconciliation.Bucket) -> BucketPublic:
    return BucketPublic(count=bucket.count, amounts=dict(sorted(bucket.amounts.items())))


def event_public(row: dict[str, Any]) -> PaymentEventPublic:
    raw: bytes = row["raw"]
    try:
        raw_text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        raw_text = None
    return PaymentEventPublic.model_validate(
        {**row, "raw_text": raw_text, "raw_base64": base64.b64encode(raw).decode("ascii")}
    )
