"""The ``notify`` step, and the values every template of a run sees (a mixin of the engine).

A send is keyed ``<run>:<step>``: a key already ``sent`` moves the run on without sending; the
message carries the key in its metadata (Slack), so a redo after a crash can find it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from schemas.models import NotificationTrigger
from sinks.notifications.store import RunRow, RunStore
from streams.notifications.delivery import Delivery, now_utc
from streams.notifications.messages import Action, Message
from streams.notifications.model import NotifyStep
from streams.notifications.templates import render
from synapseops.settings import Settings


class NotifySteps:
    """The notify step of :class:`~streams.notifications.engine.Engine` (a mixin)."""

    settings: Settings
    runs: RunStore
    delivery: Delivery

    def _context(
        self, run: RunRow, trigger: NotificationTrigger, context: dict[str, Any]
    ) -> dict[str, Any]:
        base = self.settings.public_api_url
        values: dict[str, Any] = trigger.model_dump(mode="json")
        values["approval"] = context.get("approval") or {}
        values["links"] = {
            "console": f"{base}/services/notifications",
            "run": f"{base}/services/notifications/runs/{run.id}",
            **(context.get("links") or {}),
        }
        return values

    async def _notify(
        self,
        run: RunRow,
        index: int,
        step: NotifyStep,
        trigger: NotificationTrigger,
        context: dict[str, Any],
    ) -> None:
        key = f"{run.id}:{index}"
        found = await asyncio.to_thread(self.runs.send_state, key)
        if found is not None and found[0] == "sent":
            await asyncio.to_thread(self.runs.move, run.id, index + 1, now_utc(), context)
            return
        values = self._context(run, trigger, context)
        links = values["links"]
        actions: tuple[Action, ...] = ()
        if step.actions and links.get("approve"):
            actions = (
                Action("Approve", links["approve"], "primary"),
                Action("Reject", links["reject"], "danger"),
            )
        message = Message(
            title=render(step.title, values),
            text=render(step.text, values),
            subject=render(step.subject, values) if step.subject else None,
            fields=tuple(sorted(trigger.details.items()))[:10] if step.fields else (),
            actions=actions,
            link=links["run"],
            metadata={"idempotency_key": key},
        )
        await self.delivery.deliver(step.channel, message, key, run_id=run.id, step=index)
        await asyncio.to_thread(self.runs.move, run.id, index + 1, now_utc(), context)
