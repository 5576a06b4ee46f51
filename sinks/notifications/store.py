"""The workflow engine's durable state: runs, their leases and steps, and the sends.

Every call is one short transaction (psycopg2: callers run them in a thread). A run is advanced
only by the holder of its lease (:meth:`RunStore.claim`); a worker killed mid-run gives the run
over when the lease ends, and the next holder redoes at most the step in hand — which is safe
because every step's decision (:meth:`RunStore.step_detail`) and every send
(:meth:`RunStore.begin_send`) is keyed by run and step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from sinks.db import database_errors
from sinks.notifications.tables import (
    channels,
    run_steps,
    runs,
    sends,
    workflow_versions,
    workflows,
)
from synapseops.ids import new_id

LIVE = ("running", "waiting")


@dataclass(frozen=True)
class WorkflowVersion:
    workflow_id: int
    name: str
    version: int
    spec: dict[str, Any]


@dataclass(frozen=True)
class RunRow:
    id: str
    workflow_id: int
    version: int
    trigger: dict[str, Any]
    context: dict[str, Any]
    step: int
    state: str
    wake_at: datetime | None
    spec: dict[str, Any]


class RunStore:
    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    # ---- workflows and runs ---------------------------------------------------------------

    def workflows_for(self, kind: str) -> list[WorkflowVersion]:
        """The enabled workflows of a trigger kind, each at its current version."""
        statement = (
            select(workflows.c.id, workflows.c.name, workflows.c.version, workflow_versions.c.spec)
            .join(
                workflow_versions,
                and_(
                    workflow_versions.c.workflow_id == workflows.c.id,
                    workflow_versions.c.version == workflows.c.version,
                ),
            )
            .where(workflows.c.trigger_kind == kind, workflows.c.enabled.is_(True))
            .order_by(workflows.c.id)
        )
        with database_errors("read workflows"), self.engine.connect() as conn:
            return [
                WorkflowVersion(r.id, r.name, r.version, r.spec) for r in conn.execute(statement)
            ]

    def start_runs(
        self,
        chosen: Sequence[WorkflowVersion],
        trigger: dict[str, Any],
        dedup_key: str,
    ) -> list[tuple[str, str]]:
        """One run per chosen workflow unless one with this ``dedup_key`` exists: every
        ``(run id, state)`` of them, new or old."""
        if not chosen:
            return []
        rows = [
            {
                "id": new_id("nrun"),
                "workflow_id": w.workflow_id,
                "version": w.version,
                "trigger_kind": trigger["kind"],
                "subject_id": trigger["subject_id"],
                "dedup_key": dedup_key,
                "trigger": trigger,
                "context": {},
                "trace_id": trigger.get("trace_id"),
                "state": "running",
            }
            for w in chosen
        ]
        ids = [w.workflow_id for w in chosen]
        with database_errors("start runs"), self.engine.begin() as conn:
            conn.execute(
                insert(runs).on_conflict_do_nothing(constraint="uq_notification_runs_dedup"), rows
            )
            found = conn.execute(
                select(runs.c.id, runs.c.state)
                .where(runs.c.workflow_id.in_(ids), runs.c.dedup_key == dedup_key)
                .order_by(runs.c.workflow_id)
            )
            return [(r.id, r.state) for r in found]

    def claim(self, run_id: str, now: datetime, lease_s: float) -> RunRow | None:
        """The run with its lease taken until ``now + lease_s``; None when it is finished or
        another holder's lease still runs."""
        statement = (
            update(runs)
            .where(
                runs.c.id == run_id,
                runs.c.state.in_(LIVE),
                or_(runs.c.lease_until.is_(None), runs.c.lease_until < now),
            )
            .values(lease_until=now + timedelta(seconds=lease_s), updated_at=now)
            .returning(runs)
        )
        with database_errors("claim run"), self.engine.begin() as conn:
            row = conn.execute(statement).mappings().first()
            if row is None:
                return None
            spec = conn.execute(
                select(workflow_versions.c.spec).where(
                    workflow_versions.c.workflow_id == row["workflow_id"],
                    workflow_versions.c.version == row["version"],
                )
            ).scalar_one()
        return RunRow(
            id=row["id"],
            workflow_id=row["workflow_id"],
            version=row["version"],
            trigger=row["trigger"],
            context=row["context"] or {},
            step=row["step"],
            state=row["state"],
            wake_at=row["wake_at"],
            spec=spec,
        )

    def _set(self, run_id: str, what: str, **values: Any) -> None:
        with database_errors(what), self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def release(self, run_id: str) -> None:
        self._set(run_id, "release run", lease_until=None)

    def move(
        self, run_id: str, step: int, now: datetime, context: dict[str, Any] | None = None
    ) -> None:
        """The run goes on at ``step`` (its wait over)."""
        values: dict[str, Any] = {
            "step": step,
            "state": "running",
            "wake_at": None,
            "waiting_on": None,
            "resume_sent_at": None,
            "updated_at": now,
        }
        if context is not None:
            values["context"] = context
        self._set(run_id, "move run", **values)

    def wait(self, run_id: str, wake_at: datetime, waiting_on: str, now: datetime) -> None:
        self._set(
            run_id,
            "park run",
            state="waiting",
            wake_at=wake_at,
            waiting_on=waiting_on,
            resume_sent_at=None,
            updated_at=now,
        )

    def wake(self, run_id: str, now: datetime) -> None:
        """Make a waiting run due now (its approval was answered)."""
        self._set(run_id, "wake run", wake_at=now, resume_sent_at=None, updated_at=now)

    def finish(self, run_id: str, outcome: str, now: datetime, state: str = "done") -> None:
        self._set(
            run_id,
            "finish run",
            state=state,
            outcome=outcome[:2000],
            wake_at=None,
            waiting_on=None,
            lease_until=None,
            finished_at=now,
            updated_at=now,
        )

    def note_error(self, run_id: str, error: str) -> None:
        self._set(run_id, "note run error", last_error=error[:2000], lease_until=None)

    def step_detail(self, run_id: str, step: int) -> dict[str, Any] | None:
        with database_errors("read run step"), self.engine.connect() as conn:
            found = conn.execute(
                select(run_steps.c.detail).where(
                    run_steps.c.run_id == run_id, run_steps.c.step == step
                )
            ).scalar_one_or_none()
        return dict(found) if found is not None else None

    def put_step(self, run_id: str, step: int, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
        """Record a step's decision once; the decision recorded (an earlier one wins)."""
        with database_errors("record run step"), self.engine.begin() as conn:
            conn.execute(
                insert(run_steps)
                .values(run_id=run_id, step=step, kind=kind, detail=detail)
                .on_conflict_do_nothing()
            )
            stored = conn.execute(
                select(run_steps.c.detail).where(
                    run_steps.c.run_id == run_id, run_steps.c.step == step
                )
            ).scalar_one()
        return dict(stored)

    def due_runs(self, now: datetime, resend_after_s: float, limit: int = 500) -> list[str]:
        """Live runs whose wait is over (or whose holder died), marked as resumed now: the ids
        to publish a resume command for."""
        due = (
            select(runs.c.id)
            .where(
                runs.c.state.in_(LIVE),
                or_(runs.c.wake_at.is_(None), runs.c.wake_at <= now),
                or_(runs.c.lease_until.is_(None), runs.c.lease_until < now),
                or_(
                    runs.c.resume_sent_at.is_(None),
                    runs.c.resume_sent_at < now - timedelta(seconds=resend_after_s),
                ),
                # A run just started is being advanced by its trigger's handler.
                runs.c.updated_at < now - timedelta(seconds=1),
            )
            .order_by(runs.c.wake_at.nulls_first())
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with database_errors("find due runs"), self.engine.begin() as conn:
            ids = list(conn.execute(due).scalars())
            if ids:
                conn.execute(update(runs).where(runs.c.id.in_(ids)).values(resume_sent_at=now))
        return ids

    # ---- sends ----------------------------------------------------------------------------

    def send_state(self, key: str) -> tuple[str, dict[str, Any] | None] | None:
        with database_errors("read send"), self.engine.connect() as conn:
            row = conn.execute(
                select(sends.c.state, sends.c.receipt).where(sends.c.idempotency_key == key)
            ).first()
        return (row.state, row.receipt) if row is not None else None

    def begin_send(
        self, key: str, channel_id: int, channel_kind: str, run_id: str | None, step: int | None
    ) -> int:
        """Record the send as under way; its attempt number (above 1: an earlier attempt's
        outcome is unknown, it may have reached the platform)."""
        statement = insert(sends).values(
            idempotency_key=key,
            run_id=run_id,
            step=step,
            channel_id=channel_id,
            channel_kind=channel_kind,
            state="sending",
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[sends.c.idempotency_key],
            set_={"attempts": sends.c.attempts + 1, "state": "sending"},
            where=sends.c.state != "sent",
        ).returning(sends.c.attempts)
        with database_errors("begin send"), self.engine.begin() as conn:
            attempts = conn.execute(upsert).scalar_one_or_none()
        return int(attempts or 1)

    def sent(
        self, key: str, receipt: dict[str, Any], now: datetime, then: tuple[str, int] | None = None
    ) -> None:
        """The send is done — and, in the same transaction, the run moves to its next step."""
        with database_errors("record send"), self.engine.begin() as conn:
            conn.execute(
                update(sends)
                .where(sends.c.idempotency_key == key)
                .values(state="sent", receipt=receipt, sent_at=now, error=None)
            )
            if then is not None:
                run_id, step = then
                conn.execute(
                    update(runs).where(runs.c.id == run_id).values(step=step, updated_at=now)
                )

    def send_held(self, key: str, error: str) -> datetime | None:
        """A send refused for now (429, its rate gate): not an attempt — the count
        :meth:`begin_send` added is taken back, so a later try is no redo. When the send was
        first tried (None: already sent)."""
        statement = (
            update(sends)
            .where(sends.c.idempotency_key == key, sends.c.state != "sent")
            .values(attempts=func.greatest(sends.c.attempts - 1, 0), error=error[:2000])
            .returning(sends.c.created_at)
        )
        with database_errors("record held send"), self.engine.begin() as conn:
            first: datetime | None = conn.execute(statement).scalar_one_or_none()
        return first

    def send_failed(self, key: str, error: str, final: bool) -> None:
        with database_errors("record send failure"), self.engine.begin() as conn:
            conn.execute(
                update(sends)
                .where(sends.c.idempotency_key == key, sends.c.state != "sent")
                .values(error=error[:2000], state="failed" if final else "sending")
            )

    # ---- channels -------------------------------------------------------------------------

    def channel(
        self, *, name: str | None = None, channel_id: int | None = None
    ) -> dict[str, Any] | None:
        clause = channels.c.name == name if name is not None else channels.c.id == channel_id
        with database_errors("read channel"), self.engine.connect() as conn:
            row = conn.execute(select(channels).where(clause)).mappings().first()
        return dict(row) if row is not None else None

    def counts(self) -> dict[str, int]:
        with database_errors("count runs"), self.engine.connect() as conn:
            return {
                r.state: int(r.n)
                for r in conn.execute(
                    select(runs.c.state, func.count().label("n")).group_by(runs.c.state)
                )
            }
