"""``/api/v1/approvals``: the approval inbox — list, one, approve, reject.

Who answers is the authenticated principal (an ``approver`` at least, by the access table; then
the approval's own ``roles``/``principals``: 403 with the reason otherwise). An approval is
answered once: a second answer is 409.

A large payment's approval (it carries a ``settlement_id``) is the settlement's own decision:
the inbox publishes the very command ``POST /api/v1/settlements/{id}/approve|reject`` publishes
(``payments.settlement.commands``, keyed by the payment) and answers 202; the payment service
applies the first command on that partition, and the notification pipeline answers the
approval from that same first command — so the inbox and the settlement's API are one
decision, never two. Any other approval is answered here, in PostgreSQL, at once (200), and the
run is resumed (a resume command; the waker resumes it anyway should Kafka be away).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import EngineDep, PrincipalDep, ProducerDep, SettingsDep
from api.publish import Command, publish_command
from sinks.notifications import queries
from sinks.notifications.approvals import Answer, ApprovalStore
from sinks.notifications.secrets import link_secret
from streams.notifications.links import ApprovalLinks
from synapseops import headers as kh
from synapseops.errors import ApprovalLinkInvalid, KafkaUnavailable
from synapseops.ids import child_traceparent
from synapseops.logging import get_logger
from synapseops.principals import Principal, Role
from synapseops.settings import Settings
from topics.registry import (
    NOTIFICATION_COMMANDS,
    NOTIFICATION_RESUME,
    SETTLEMENT_COMMAND,
    SETTLEMENT_COMMANDS,
)

router = APIRouter(prefix="/approvals", tags=["approvals"])
log = get_logger(__name__)
State = Literal["pending", "approved", "rejected", "expired"]
Decision = Literal["approve", "reject"]


class ApprovalPublic(BaseModel):
    id: str
    run_id: str
    workflow: str
    trigger_kind: str
    question: str
    settlement_id: str | None
    approvers: dict[str, list[str]]
    state: State
    expires_at: datetime
    on_expiry: str
    answered_by: str | None
    answered_at: datetime | None
    reason: str | None
    created_at: datetime
    age_s: float = Field(description="seconds since it was asked")


class ApprovalsPublic(BaseModel):
    items: list[ApprovalPublic]
    total: int
    next_offset: int | None


class AnswerRequest(BaseModel):
    """Why (optional), and the signed link the answer came through (optional: checked when
    given, so a link for another approval or decision, or an expired one, is refused)."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000)
    link_token: str | None = Field(default=None, max_length=2000)


class AnswerAccepted(BaseModel):
    approval_id: str
    decision: Decision
    actor: str
    state: str = Field(description="answered, or decision_published (a settlement's approval)")
    settlement_id: str | None = None
    # Where a settlement's decision was published (payments.settlement.commands).
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


def _public(row: dict[str, Any]) -> ApprovalPublic:
    age = (datetime.now(UTC) - row["created_at"]).total_seconds()
    return ApprovalPublic.model_validate({**row, "age_s": round(age, 3)})


@router.get("", summary="The approval inbox, newest first")
def list_approvals(
    engine: EngineDep,
    state: State | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ApprovalsPublic:
    rows, total = queries.list_approvals(engine, state=state, limit=limit, offset=offset)
    following = offset + len(rows)
    return ApprovalsPublic(
        items=[_public(r) for r in rows],
        total=total,
        next_offset=following if following < total else None,
    )


@router.get("/{approval_id}", summary="One approval", responses={404: {"description": "none"}})
def get_approval(engine: EngineDep, approval_id: str) -> ApprovalPublic:
    rows, _ = queries.list_approvals(engine, state=None, limit=1, offset=0, approval_id=approval_id)
    if not rows:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no approval {approval_id!r}")
    return _public(rows[0])


def links_of(settings: Settings) -> ApprovalLinks:
    hours = settings.notifications.link_hours
    return ApprovalLinks(link_secret(settings), settings.public_api_url, hours * 3600)


def may_answer(principal: Principal, approvers: dict[str, list[str]]) -> bool:
    """Whether the principal is one the approval names (by role, or by name/actor)."""
    named = set(approvers.get("principals") or [])
    if principal.actor in named or principal.name in named:
        return True
    return any(principal.may(Role(role)) for role in approvers.get("roles") or [])


async def answer(
    request: Request,
    engine: EngineDep,
    producer: ProducerDep,
    settings: SettingsDep,
    principal: Principal,
    approval_id: str,
    decision: Decision,
    body: AnswerRequest,
) -> tuple[int, AnswerAccepted]:
    store = ApprovalStore(engine)
    row = await asyncio.to_thread(store.get, approval_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no approval {approval_id!r}")
    if body.link_token is not None:
        claim = links_of(settings).read(body.link_token)
        if (claim.approval_id, claim.decision) != (approval_id, decision):
            raise ApprovalLinkInvalid("this link is for another approval or decision")
    if row["state"] != "pending":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"approval {approval_id!r} is {row['state']} (by {row['answered_by']})",
        )
    if not may_answer(principal, row["approvers"]):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{principal.actor} is not among the approvers of {approval_id!r}: {row['approvers']}",
        )
    accepted = AnswerAccepted(
        approval_id=approval_id, decision=decision, actor=principal.actor, state="answered"
    )
    traceparent = child_traceparent(request.headers.get("traceparent"))
    if row["settlement_id"]:
        command = {
            "settlement_id": row["settlement_id"],
            "decision": decision,
            "actor": principal.actor,
            "at": datetime.now(UTC).isoformat(),
            "reason": body.reason,
        }
        published = await publish_command(
            producer,
            Command(
                topic=SETTLEMENT_COMMANDS.name,
                kind=SETTLEMENT_COMMAND,
                name=f"settlement.{decision}",
                key=(row["payment_id"] or row["settlement_id"]).encode(),
                value=json.dumps(command).encode(),
                traceparent=traceparent,
            ),
            {"approval_id": approval_id, "settlement_id": row["settlement_id"]},
        )
        accepted.state, accepted.settlement_id = "decision_published", row["settlement_id"]
        accepted.topic, accepted.partition = published.topic, published.partition
        accepted.offset = published.offset
        return status.HTTP_202_ACCEPTED, accepted
    state = "approved" if decision == "approve" else "rejected"
    now = datetime.now(UTC)
    run_id = await asyncio.to_thread(
        store.answer, approval_id, Answer(state, principal.actor, body.reason, now)
    )
    if run_id is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"approval {approval_id!r} was answered")
    headers = [(kh.MESSAGE_KIND, NOTIFICATION_RESUME.encode())]
    try:
        await producer.send(
            NOTIFICATION_COMMANDS.name,
            json.dumps({"run_id": run_id}).encode(),
            key=run_id.encode(),
            headers=headers,
        )
    except KafkaUnavailable:
        log.warning("resume not published; the waker resumes the run", extra={"run_id": run_id})
    return status.HTTP_200_OK, accepted


_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "a settlement's decision, published (applied by the worker)"},
    403: {"description": "not among this approval's approvers"},
    404: {"description": "no such approval"},
    409: {"description": "answered already"},
}


@router.post("/{approval_id}/approve", summary="Approve", responses=_RESPONSES)
async def approve(
    request: Request,
    response: Response,
    engine: EngineDep,
    producer: ProducerDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    approval_id: str,
    body: AnswerRequest | None = None,
) -> AnswerAccepted:
    code, accepted = await answer(
        request,
        engine,
        producer,
        settings,
        principal,
        approval_id,
        "approve",
        body or AnswerRequest(),
    )
    response.status_code = code
    return accepted


@router.post("/{approval_id}/reject", summary="Reject", responses=_RESPONSES)
async def reject(
    request: Request,
    response: Response,
    engine: EngineDep,
    producer: ProducerDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    approval_id: str,
    body: AnswerRequest | None = None,
) -> AnswerAccepted:
    code, accepted = await answer(
        request,
        engine,
        producer,
        settings,
        principal,
        approval_id,
        "reject",
        body or AnswerRequest(),
    )
    response.status_code = code
    return accepted
