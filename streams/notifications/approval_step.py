"""The ``wait_for_approval`` step: ask once, wait, take the answer or apply the expiry rule.

The approval is opened once per run and step; with a ``channel`` the question is sent there
with signed approve/reject links. A large payment's approval carries its settlement id and is
answered from the settlement command stream only (see :mod:`streams.notifications.engine`):
its expiry rule is published as a settlement command too, so a person's decision already on
that partition wins over the expiry — one decision, whoever was first.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

from schemas.models import LARGE_PAYMENT, NotificationTrigger
from sinks.notifications.approvals import Answer, ApprovalStore
from sinks.notifications.store import RunRow, RunStore
from streams.notifications.delivery import Delivery, now_utc
from streams.notifications.links import ApprovalLinks
from streams.notifications.messages import Action, Message
from streams.notifications.model import ApprovalStep
from streams.notifications.templates import render
from synapseops import headers as kh
from synapseops.ids import child_traceparent, new_id
from synapseops.settings import Settings
from topics.registry import SETTLEMENT_COMMAND, SETTLEMENT_COMMANDS

EXPIRY_ACTOR = "notifications:expiry"


class ApprovalSteps:
    """The approval step of :class:`~streams.notifications.engine.Engine` (a mixin)."""

    settings: Settings
    runs: RunStore
    approvals: ApprovalStore
    delivery: Delivery
    links: ApprovalLinks
    lease_s: float

    def _context(
        self, run: RunRow, trigger: NotificationTrigger, context: dict[str, Any]
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def _approval(
        self,
        run: RunRow,
        index: int,
        step: ApprovalStep,
        trigger: NotificationTrigger,
        context: dict[str, Any],
    ) -> str | None:
        """None when answered (``context["approval"]`` says how), else what the run waits on."""
        now = now_utc()
        approval = await asyncio.to_thread(self.approvals.for_step, run.id, index)
        if approval is None:
            settles = trigger.kind == LARGE_PAYMENT and "settlement_id" in trigger.details
            approval = await asyncio.to_thread(
                self.approvals.open,
                run.id,
                index,
                trigger_kind=trigger.kind,
                question=render(step.question, self._context(run, trigger, context)),
                settlement_id=trigger.details.get("settlement_id") if settles else None,
                payment_id=trigger.details.get("payment_id") if settles else None,
                approvers={"roles": list(step.roles), "principals": list(step.principals)},
                expires_at=now + timedelta(seconds=step.expires_s),
                on_expiry=step.on_expiry,
            )
        context["links"] = {
            "approve": self.links.url(approval["id"], "approve"),
            "reject": self.links.url(approval["id"], "reject"),
            "approval": f"{self.settings.public_api_url}/services/notifications/approvals",
        }
        if step.channel:
            # Once per run and step whatever the approval's state: a worker killed between
            # opening the approval and sending the question leaves it unsent, and the approval
            # may be answered in the inbox meanwhile. The question still goes out (saying the
            # answer, without buttons): the channel shows every step of the workflow once.
            await self._ask(run, index, step, trigger, context, approval)
        if approval["state"] == "pending" and now >= approval["expires_at"]:
            waiting = await self._expire(run, approval, now)
            if waiting is not None:
                return waiting
            approval = await asyncio.to_thread(self.approvals.get, approval["id"])
            assert approval is not None
        if approval["state"] != "pending":
            decision = approval["state"]
            if decision == "expired":
                decision = {"reject": "rejected", "approve": "approved"}.get(
                    step.on_expiry, "ended"
                )
            context["approval"] = {
                "id": approval["id"],
                "decision": decision,
                "state": approval["state"],
                "by": approval["answered_by"],
                "reason": approval["reason"],
            }
            context.pop("links", None)
            return None
        until = approval["expires_at"]
        await asyncio.to_thread(self.runs.move, run.id, index, now, context)
        await asyncio.to_thread(self.runs.wait, run.id, until, f"approval {approval['id']}", now)
        return f"waiting for approval {approval['id']}"

    async def _ask(
        self,
        run: RunRow,
        index: int,
        step: ApprovalStep,
        trigger: NotificationTrigger,
        context: dict[str, Any],
        approval: dict[str, Any],
    ) -> None:
        """The question on the step's channel with approve/reject buttons, once; an approval
        answered before its question went out is told with its answer instead of buttons."""
        assert step.channel is not None
        values = self._context(run, trigger, context)
        links = values["links"]
        text = render(step.text, values)
        actions: tuple[Action, ...] = (
            Action("Approve", links["approve"], "primary"),
            Action("Reject", links["reject"], "danger"),
        )
        if approval["state"] != "pending":
            by = f" by {approval['answered_by']}" if approval.get("answered_by") else ""
            text = f"{text}\n\nAlready answered: {approval['state']}{by}.".strip()
            actions = ()
        message = Message(
            title=render(step.title, values),
            text=text,
            fields=tuple(sorted(trigger.details.items()))[:10],
            actions=actions,
            link=links["approval"],
            metadata={"idempotency_key": f"{run.id}:{index}:ask"},
        )
        await self.delivery.deliver(
            step.channel, message, f"{run.id}:{index}:ask", run_id=run.id, step=index
        )

    async def _expire(self, run: RunRow, approval: dict[str, Any], now: datetime) -> str | None:
        """Apply the expiry rule; what the run waits on, or None when the approval is closed.

        A settlement's rule (``reject``/``approve``) is a settlement command: the approval is
        answered when that command comes back on the settlement's partition, after any
        person's decision already there — one decision, whoever was first.
        """
        rule = approval["on_expiry"]
        if approval["settlement_id"] and rule in ("reject", "approve"):
            sent = approval["expiry_sent_at"]
            if sent is None or sent < now - timedelta(seconds=self.lease_s):
                await self._publish_settlement(approval, rule, now)
                await asyncio.to_thread(self.approvals.expiry_sent, approval["id"], now)
            until = now + timedelta(seconds=self.lease_s)
            await asyncio.to_thread(
                self.runs.wait, run.id, until, f"expiry of approval {approval['id']}", now
            )
            return f"expired; {rule} sent to settlement {approval['settlement_id']}"
        answer = Answer("expired", EXPIRY_ACTOR, f"expired ({rule})", now)
        await asyncio.to_thread(self.approvals.answer, approval["id"], answer)
        return None

    async def _publish_settlement(self, approval: dict[str, Any], rule: str, now: datetime) -> None:
        value = json.dumps(
            {
                "settlement_id": approval["settlement_id"],
                "decision": rule,
                "actor": EXPIRY_ACTOR,
                "at": now.isoformat(),
                "reason": "the approval expired",
            }
        ).encode()
        headers = kh.ingress_headers(
            event_id=new_id("cmd"),
            source="notifications",
            event_type=f"settlement.{rule}",
            received_at=kh.received_at_now(),
            traceparent=child_traceparent(None),
        )
        headers.append((kh.MESSAGE_KIND, SETTLEMENT_COMMAND.encode()))
        key = (approval["payment_id"] or approval["settlement_id"]).encode()
        await self.delivery.producer.send(SETTLEMENT_COMMANDS.name, value, key=key, headers=headers)
