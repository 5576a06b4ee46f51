"""``/api/v1/settlements``: list, audit trail, approvals, daily volumes, reconciliation.

Reads come from PostgreSQL through :mod:`sinks.payments.queries` (plain ``def`` routes:
FastAPI's threadpool keeps psycopg2 off the event loop). An approval is a *command*: the route
checks the settlement waits for approval, publishes ``{settlement_id, decision, actor, at,
reason}`` (``actor``: the authenticated principal, e.g. ``token:ana-approvals``) to
``payments.settlement.commands`` keyed by the payment (so it is ordered with that
payment's Stripe events) and answers 202 once Kafka has it; the worker applies it and records
who and when. Fixed paths are declared before ``/{settlement_id}`` so they are not taken for ids.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status

from api.deps import EngineDep, PrincipalDep, ProducerDep
from api.publish import Command, publish_command
from api.routes.payments.settlement_models import (
    ApprovalPublic,
    DailyVolume,
    DailyVolumesPublic,
    DecisionAccepted,
    DecisionRequest,
    ReconciliationPublic,
    SettlementDetail,
    SettlementPublic,
    SettlementsPublic,
    bucket_public,
    event_public,
)
from sinks.payments import queries
from sinks.payments import reconciliation as reconciliation_report
from streams.payments.events import SettlementCommand
from synapseops.ids import child_traceparent
from synapseops.logging import get_logger
from synapseops.principals import Principal
from topics.registry import SETTLEMENT_COMMAND, SETTLEMENT_COMMANDS

router = APIRouter(prefix="/settlements", tags=["settlements"])
log = get_logger(__name__)

MAX_PAGE = 500

# The values of sinks.payments.tables.STATES (a Literal cannot be built from a tuple).
State = Literal["pending", "pending_approval", "settled", "failed"]
Decision = Literal["approve", "reject"]
Currency = Annotated[str, Query(pattern=r"^[A-Za-z]{3}$", description="ISO 4217, any case")]


# ---- reads -----------------------------------------------------------------------------


@router.get("", summary="Settlements, newest first")
def list_settlements(
    engine: EngineDep,
    state: State | None = None,
    currency: Currency | None = None,
    since: Annotated[datetime | None, Query(description="created_at >= since")] = None,
    until: Annotated[datetime | None, Query(description="created_at < until")] = None,
    payment_id: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> SettlementsPublic:
    criteria = queries.SettlementFilter(
        state=state,
        currency=currency.upper() if currency else None,
        since=since,
        until=until,
        payment_id=payment_id,
    )
    rows, total = queries.list_settlements(engine, criteria, limit=limit, offset=offset)
    following = offset + len(rows)
    return SettlementsPublic(
        items=[SettlementPublic.model_validate(row) for row in rows],
        total=total,
        next_offset=following if following < total else None,
    )


@router.get("/volumes/daily", summary="Settlement count and amount per UTC day, currency, state")
def daily_volumes(
    engine: EngineDep,
    since: Annotated[date | None, Query(description="first day, inclusive")] = None,
    until: Annotated[date | None, Query(description="last day, inclusive")] = None,
    currency: Currency | None = None,
) -> DailyVolumesPublic:
    rows = queries.daily_volumes(
        engine, since=since, until=until, currency=currency.upper() if currency else None
    )
    return DailyVolumesPublic(items=[DailyVolume.model_validate(row) for row in rows])


@router.get("/reconciliation", summary="One day's accepted Stripe events against their ends")
def reconciliation(
    engine: EngineDep, day: Annotated[date, Query(description="UTC day, YYYY-MM-DD")]
) -> ReconciliationPublic:
    report = reconciliation_report.reconciliation(engine, day)
    buckets = {name: bucket_public(bucket) for name, bucket in report.buckets.items()}
    return ReconciliationPublic(
        day=report.day,
        accepted=bucket_public(report.accepted),
        accounted=report.accounted,
        balanced=report.balanced,
        **buckets,
    )


@router.get(
    "/{settlement_id}",
    summary="One settlement with its audit trail",
    responses={404: {"description": "no such settlement"}},
)
def get_settlement(engine: EngineDep, settlement_id: str) -> SettlementDetail:
    trail = queries.settlement_trail(engine, settlement_id)
    if trail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no settlement {settlement_id!r}")
    row = trail.settlement
    approval = (
        ApprovalPublic(
            decision=row["approval_decision"], actor=row["approved_by"], at=row["approved_at"]
        )
        if row["approval_decision"] is not None
        else None
    )
    return SettlementDetail.model_validate(
        {
            **row,
            "approval": approval,
            "events": [event_public(event) for event in trail.events],
            "attempts": trail.attempts,
            "audit": trail.audit,
        }
    )


# ---- commands --------------------------------------------------------------------------


async def _decide(
    request: Request,
    engine: EngineDep,
    producer: ProducerDep,
    settlement_id: str,
    decision: Decision,
    body: DecisionRequest,
    principal: Principal,
) -> DecisionAccepted:
    row = await asyncio.to_thread(queries.get_settlement, engine, settlement_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no settlement {settlement_id!r}")
    if row["state"] != "pending_approval":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"settlement {settlement_id!r} is {row['state']}, not pending_approval",
        )
    command = SettlementCommand(
        settlement_id=settlement_id,
        decision=decision,
        actor=principal.actor,
        at=datetime.now(UTC),
        reason=body.reason,
    )
    published = await publish_command(
        producer,
        Command(
            topic=SETTLEMENT_COMMANDS.name,
            kind=SETTLEMENT_COMMAND,
            name=f"settlement.{decision}",
            key=row["payment_id"].encode(),
            value=command.encode(),
            traceparent=child_traceparent(request.headers.get("traceparent")),
        ),
        {"settlement_id": settlement_id, "payment_id": row["payment_id"], "actor": principal.actor},
    )
    return DecisionAccepted(
        command=command,
        topic=published.topic,
        partition=published.partition,
        offset=published.offset,
    )


_DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such settlement"},
    409: {"description": "the settlement is not pending_approval"},
    503: {"description": "Kafka did not take the command; retry after Retry-After seconds"},
}


@router.post(
    "/{settlement_id}/approve",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Let a large payment settle (applied by the worker)",
    responses=_DECISION_RESPONSES,
)
async def approve(
    request: Request,
    engine: EngineDep,
    producer: ProducerDep,
    principal: PrincipalDep,
    settlement_id: str,
    body: DecisionRequest | None = None,
) -> DecisionAccepted:
    return await _decide(
        request, engine, producer, settlement_id, "approve", body or DecisionRequest(), principal
    )


@router.post(
    "/{settlement_id}/reject",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Stop a large payment (applied by the worker)",
    responses=_DECISION_RESPONSES,
)
async def reject(
    request: Request,
    engine: EngineDep,
    producer: ProducerDep,
    principal: PrincipalDep,
    settlement_id: str,
    body: DecisionRequest | None = None,
) -> DecisionAccepted:
    return await _decide(
        request, engine, producer, settlement_id, "reject", body or DecisionRequest(), principal
    )
