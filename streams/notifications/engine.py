"""The workflow engine: triggers start runs, runs advance step by step, durably.

A trigger (Avro ``notification_trigger``) starts one run per enabled workflow of its kind whose
condition holds — once per ``dedup_key`` (or per trigger bytes without one): a repeat finds the
run it started. A run is advanced by whoever holds its lease (the trigger's handler, a resume
command, a settlement command); each step's effect is durable before the run moves on:

* a send is keyed ``<run>:<step>``: a ``sent`` row is never sent again; the row is written
  ``sent`` and the run moved to the next step in one transaction;
* a delay's deadline, a throttle's verdict and a digest's membership are written once per run
  and step (``notification_run_steps``), so a redo after ``kill -9`` decides the same;
* a wait (delay, approval, a send held by a 429's ``Retry-After``) parks the run with
  ``wake_at``; the waker (:mod:`.waker`) publishes a resume command when it is due — restarts
  lose nothing, the state is in PostgreSQL.

A large payment's approval is the settlement's own decision: the inbox publishes the same
settlement command the settlement's API does, and this pipeline answers the approval from the
first command on that payment's partition (the one payments applies too) — one decision.

A dead letter of this very pipeline never starts a workflow: notifying it could fail the same
way and dead-letter again, a loop (counted as ``own_dead_letter``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from schemas.models import DEAD_LETTER, NotificationTrigger
from schemas.serde import AvroSerde
from schemas.store import schema_store
from sinks.notifications.approvals import Answer, ApprovalStore, WindowStore
from sinks.notifications.secrets import link_secret
from sinks.notifications.store import RunRow, RunStore
from streams.notifications import metrics
from streams.notifications.approval_step import EXPIRY_ACTOR, ApprovalSteps
from streams.notifications.delivery import Delivery, now_utc
from streams.notifications.links import ApprovalLinks
from streams.notifications.model import (
    ApprovalStep,
    ConditionStep,
    DelayStep,
    DigestStep,
    NotifyStep,
    ThrottleStep,
    WorkflowSpec,
    dedup_key,
    facts,
    trigger_from_json,
    window_bounds,
)
from streams.notifications.notify_step import NotifySteps
from streams.notifications.templates import render
from streams.road import Outcome, RoadRecord
from synapseops.errors import (
    FatalError,
    RetryableError,
    SchemaInvalid,
    SendHeld,
    Undecodable,
)
from synapseops.kafka import AsyncProducer
from synapseops.logging import get_logger
from synapseops.settings import Settings
from topics.registry import (
    NOTIFICATION_DISPATCH,
    NOTIFICATION_RESUME,
    NOTIFICATION_TRIGGER,
    NOTIFICATION_TRIGGERS,
    SETTLEMENT_COMMAND,
)

log = get_logger(__name__)
# A run whose record is on the retry road belongs to that record, not to the waker.
ON_THE_ROAD = timedelta(days=36500)


class Engine(NotifySteps, ApprovalSteps):
    """The ``notification-dispatch`` pipeline's handlers and the steps they run."""

    def __init__(self, settings: Settings, engine: Any, producer: AsyncProducer) -> None:
        self.settings = settings
        self.runs = RunStore(engine)
        self.approvals = ApprovalStore(engine)
        self.windows = WindowStore(engine)
        self.delivery = Delivery(settings, self.runs, self.windows, producer)
        self.serde = AvroSerde(
            schema_store(settings.schema_registry), NOTIFICATION_TRIGGERS.value_schema
        )
        self.lease_s = settings.notifications.lease_s
        self.links = ApprovalLinks(
            link_secret(settings),
            settings.public_api_url,
            settings.notifications.link_hours * 3600,
        )

    @property
    def handlers(self) -> dict[str, Any]:
        return {
            NOTIFICATION_TRIGGER: self.trigger,
            NOTIFICATION_RESUME: self.resume,
            SETTLEMENT_COMMAND: self.settlement_command,
        }

    # ---- the three inputs -----------------------------------------------------------------

    def decode(self, raw: bytes | None) -> NotificationTrigger:
        try:
            return NotificationTrigger.from_record(self.serde.decode(raw or b""))
        except (Undecodable, SchemaInvalid):
            raise
        except (ValueError, ValidationError, EOFError, KeyError) as exc:
            raise Undecodable(f"not a notification_trigger: {type(exc).__name__}: {exc}") from exc

    async def trigger(self, record: RoadRecord) -> Outcome:
        trigger = self.decode(record.value)
        if trigger.kind == DEAD_LETTER and trigger.pipeline == NOTIFICATION_DISPATCH:
            metrics.TRIGGERS.labels(trigger.kind, "own_dead_letter").inc()
            return Outcome("skipped", "a dead letter of the notification pipeline itself")
        document = trigger.model_dump(mode="json")
        candidates = await asyncio.to_thread(self.runs.workflows_for, trigger.kind)
        chosen = [
            w
            for w in candidates
            if (c := WorkflowSpec.model_validate(w.spec).condition) is None
            or c.holds(facts(trigger))
        ]
        if not chosen:
            metrics.TRIGGERS.labels(trigger.kind, "no_workflow").inc()
            return Outcome("skipped", f"no enabled workflow for {trigger.kind}")
        key = dedup_key(trigger, record.value or b"")
        started = await asyncio.to_thread(self.runs.start_runs, chosen, document, key)
        metrics.TRIGGERS.labels(trigger.kind, "started").inc()
        outcomes = await self._advance_all([run_id for run_id, _ in started])
        return Outcome("done", f"runs {', '.join(outcomes)}")

    async def resume(self, record: RoadRecord) -> Outcome:
        command = _json(record.value, "resume command")
        if "digest_id" in command:
            digest_id = int(command["digest_id"])
            try:
                return Outcome("done", await self.delivery.flush_digest(digest_id))
            except SendHeld as held:
                await asyncio.to_thread(
                    self.windows.hold_digest, digest_id, held.until, self.lease_s
                )
                return Outcome("done", f"digest #{digest_id} held until {held.until}")
        run_id = str(command.get("run_id") or "")
        if not run_id:
            raise SchemaInvalid("resume command without run_id or digest_id")
        return Outcome("done", await self.advance(run_id))

    async def settlement_command(self, record: RoadRecord) -> Outcome:
        """A settlement's decision, from whichever door: answers its pending approvals."""
        command = _json(record.value, "settlement command")
        settlement_id, decision = command.get("settlement_id"), command.get("decision")
        if not isinstance(settlement_id, str) or decision not in ("approve", "reject"):
            raise SchemaInvalid("settlement command without settlement_id and decision")
        actor = str(command.get("actor") or "unknown")
        if actor == EXPIRY_ACTOR:
            state = "expired"
        else:
            state = "approved" if decision == "approve" else "rejected"
        at = _when(command.get("at"))
        answer = Answer(state, actor, command.get("reason"), at)
        pending = await asyncio.to_thread(self.approvals.pending_for_settlement, settlement_id)
        woken = [
            run_id
            for approval_id in pending
            if (run_id := await asyncio.to_thread(self.approvals.answer, approval_id, answer))
        ]
        if not woken:
            return Outcome("skipped", f"no approval waits on settlement {settlement_id}")
        return Outcome("done", ", ".join(await self._advance_all(woken)))

    async def _advance_all(self, run_ids: list[str]) -> list[str]:
        """Advance every run; the first failure is raised after all were tried."""
        outcomes: list[str] = []
        failure: BaseException | None = None
        for run_id in run_ids:
            try:
                outcomes.append(f"{run_id}: {await self.advance(run_id)}")
            except (RetryableError, FatalError) as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return outcomes

    # ---- a run ----------------------------------------------------------------------------

    async def advance(self, run_id: str) -> str:
        """Run ``run_id``'s steps until it waits or ends; what it came to."""
        run = await asyncio.to_thread(self.runs.claim, run_id, now_utc(), self.lease_s)
        if run is None:
            return "not live or held elsewhere"
        try:
            outcome = await self._steps(run)
        except SendHeld as held:
            # Not a failure: the run waits at this step for the platform's Retry-After, and
            # the waker resumes it — its record is done, no retry tier spent (see delivery).
            await asyncio.to_thread(
                self.runs.wait, run.id, held.until, f"rate limit: {held}", now_utc()
            )
            await asyncio.to_thread(self.runs.release, run.id)
            return f"held until {held.until.isoformat()}"
        except (RetryableError, FatalError) as exc:
            await asyncio.to_thread(self.runs.note_error, run.id, f"{type(exc).__name__}: {exc}")
            await asyncio.to_thread(
                self.runs.wait, run.id, now_utc() + ON_THE_ROAD, "the retry road", now_utc()
            )
            raise
        except BaseException:
            await asyncio.to_thread(self.runs.release, run.id)
            raise
        await asyncio.to_thread(self.runs.release, run.id)
        return outcome

    async def _steps(self, run: RunRow) -> str:
        spec = WorkflowSpec.model_validate(run.spec)
        trigger = trigger_from_json(run.trigger)
        context = dict(run.context)
        index = run.step
        while index < len(spec.steps):
            step = spec.steps[index]
            now = now_utc()
            if isinstance(step, NotifyStep):
                await self._notify(run, index, step, trigger, context)
                index += 1
                continue
            if isinstance(step, DelayStep):
                detail = await asyncio.to_thread(self.runs.step_detail, run.id, index)
                if detail is None:
                    until = (now + timedelta(seconds=step.seconds)).isoformat()
                    detail = await asyncio.to_thread(
                        self.runs.put_step, run.id, index, "delay", {"until": until}
                    )
                wake = datetime.fromisoformat(detail["until"])
                if now < wake:
                    await asyncio.to_thread(
                        self.runs.wait, run.id, wake, f"delay until {wake}", now
                    )
                    return f"waiting until {wake.isoformat()}"
            elif isinstance(step, ApprovalStep):
                waiting = await self._approval(run, index, step, trigger, context)
                if waiting is not None:
                    return waiting
                if context["approval"]["decision"] == "ended":
                    return await self._finish(run, "approval_expired")
            elif isinstance(step, ConditionStep):
                if not step.when.holds(facts(trigger, context)):
                    if step.else_goto == "end":
                        return await self._finish(run, "condition_false")
                    index = step.else_goto
                    await asyncio.to_thread(self.runs.move, run.id, index, now, context)
                    continue
            elif isinstance(step, ThrottleStep):
                key = render(step.key, self._context(run, trigger, context))
                start, _ = window_bounds(now, step.window_s)
                allowed = await asyncio.to_thread(
                    self.windows.throttle,
                    run.id,
                    index,
                    workflow_id=run.workflow_id,
                    key=key,
                    window_start=start,
                    limit=step.limit,
                )
                if not allowed:
                    return await self._finish(run, "throttled")
            elif isinstance(step, DigestStep):
                values = self._context(run, trigger, context)
                _, end = window_bounds(now, step.window_s)
                digest_id = await asyncio.to_thread(
                    self.windows.collect,
                    run.id,
                    index,
                    workflow_id=run.workflow_id,
                    key=render(step.key, values),
                    window_end=end,
                    channel=step.channel,
                    template=step.model_dump(),
                    item=trigger.summary,
                )
                return await self._finish(run, f"digested into #{digest_id}")
            index += 1
            await asyncio.to_thread(self.runs.move, run.id, index, now, context)
        return await self._finish(run, "done")

    async def _finish(self, run: RunRow, outcome: str) -> str:
        await asyncio.to_thread(self.runs.finish, run.id, outcome, now_utc())
        metrics.RUNS_FINISHED.labels(outcome.split(" ")[0]).inc()
        return outcome


def _json(raw: bytes | None, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Undecodable(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SchemaInvalid(f"{what} is not a JSON object")
    return value


def _when(text: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(text)) if text else now_utc()
    except ValueError:
        return now_utc()
